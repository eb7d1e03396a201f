// gitserver: the Git server of the Flux tests (docs/gitops.md, "Flux"): git's own
// http-backend behind net/http/cgi. Standard library only.
module kubectl-canary/testenv/flux/gitserver

go 1.26.0
