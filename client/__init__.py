"""`pi-jobs`: the command-line client of the pi-jobs HTTP API."""
