"""Users: registration, email confirmation, login, two-factor, password reset."""
