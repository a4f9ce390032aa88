"""The staff's enrolment screen."""
