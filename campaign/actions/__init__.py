"""Actions (protests, public meetings, stalls, trainings, visits to Trust boards) and the
supporters who sign up for them: waitlists, calendars, reminders, check-in."""
