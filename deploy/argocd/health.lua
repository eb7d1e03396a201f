-- Argo CD's health of a Deployment that kubectl-canary's GitOps mode may hold (docs/gitops.md,
-- "Argo CD"): argocd-cm's resource.customizations.health.apps_Deployment. Argo CD runs it with
-- gopher-lua and, for a custom check, only the base, table and package libraries (no string
-- library); `obj` is the live Deployment, and it returns hs with status and message.
--
-- While the brake is on (the annotation kubectl-canary.io/brake) a canary is in progress:
-- Progressing, so that sync waves after the Deployment wait for its promotion. A canary that
-- failed rests on the stable pods (the controller pauses the Deployment and scales the new
-- ReplicaSet to 0): Degraded, until a fix or a revert is committed. Without the brake, Argo
-- CD's own rules for a Deployment (its built-in check, which this one replaces).
local hs = {}
local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}
local spec = obj.spec or {}
local status = obj.status or {}
local updated = status.updatedReplicas or 0
-- The status describes the spec only once the Deployment controller has observed it.
local observed = (status.observedGeneration or 0) >= (metadata.generation or 0)

if annotations["kubectl-canary.io/brake"] ~= nil then
  hs.status = "Progressing"
  if not observed then
    hs.message = "kubectl-canary: canary in progress (the Deployment controller has yet to observe the last change)"
  elseif spec.paused == true and updated == 0 then
    hs.status = "Degraded"
    hs.message = "kubectl-canary: the canary failed and only the stable pods serve; push a fix or revert the commit (kubectl canary status)"
  else
    hs.message = "kubectl-canary: canary in progress, " .. updated .. " pod(s) of the new version"
  end
  return hs
end

if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Deployment is paused"
  return hs
end
if not observed then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
  return hs
end
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded" then
    hs.status = "Degraded"
    hs.message = "Deployment \"" .. (metadata.name or "") .. "\" exceeded its progress deadline"
    return hs
  end
end
local replicas = status.replicas or 0
local available = status.availableReplicas or 0
if spec.replicas ~= nil and updated < spec.replicas then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. spec.replicas .. " new replicas have been updated..."
  return hs
end
if replicas > updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. (replicas - updated) .. " old replicas are pending termination..."
  return hs
end
if available < updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. available .. " of " .. updated .. " updated replicas are available..."
  return hs
end
hs.status = "Healthy"
return hs
