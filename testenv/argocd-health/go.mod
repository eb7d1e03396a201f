// argocd-health: a Deployment's health as Argo CD computes it with a custom Lua health check
// (deploy/argocd/health.lua), evaluated by gopher-lua, the Lua implementation Argo CD embeds.
// A module of its own: nothing of it goes into the testenv binary, and its one dependency
// stays out of the Kubernetes components' module graph.
module kubectl-canary/testenv/argocd-health

go 1.26.0

require github.com/yuin/gopher-lua v1.1.1
