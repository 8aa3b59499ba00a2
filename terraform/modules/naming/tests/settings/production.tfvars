# Test fixture: a workspace that has a settings file.
environment = "production"
