"""`git push` to deploy: git's own `git http-backend` behind the API, one bare repository per
service, and a pre-receive hook that deploys the pushed commit through the API."""
