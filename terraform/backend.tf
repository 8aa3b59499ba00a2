# Remote state with locking, one state per workspace (S3 keys env:/<workspace>/<key>). The bucket,
# key and region are per team: put them in a file such as backend.hcl (see backend.hcl.example)
# and run `terraform init -backend-config=backend.hcl`. use_lockfile takes a lock object next to
# the state, so two applies of one workspace never run at once. Other backends with locking:
# gcs (built in), azurerm (blob lease), kubernetes (Lease); replace the block below.
terraform {
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}
