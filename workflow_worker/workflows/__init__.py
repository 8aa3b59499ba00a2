"""What an application writes against: the job context and the workflow registry."""
