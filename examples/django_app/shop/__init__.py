"""A Django shop whose checkout is behind a LaunchDarkly flag, monitored by Sentry."""
