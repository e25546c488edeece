"""Local groups: applications and approval, the directory, memberships, roles, invitations."""
