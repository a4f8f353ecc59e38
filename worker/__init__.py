"""email-worker: send email requests from Pub/Sub through Amazon SES."""

__version__ = "0.1.0"
