-- Argo CD health of simfleet resources (CarrierAccount, SimGroup, DataQuota), read from their
-- kstatus conditions: a resource paused by the annotation simfleet.io/paused (Reconciling reason
-- Paused), or observe-only and differing from its spec (reason ObserveOnly), is Suspended: the
-- operator will not act until a person changes it; Stalled=True is Degraded, Ready=True is
-- Healthy, anything else (including a status that describes an older generation) is Progressing.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the simfleet operator to report status"
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Reconciling" and condition.reason == "Paused" then
    hs.status = "Suspended"
    hs.message = condition.message
    return hs
  end
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the simfleet operator to observe generation " .. generation
  return hs
end
local ready, stalled, reconciling
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  elseif condition.type == "Reconciling" then
    reconciling = condition
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if reconciling ~= nil and reconciling.reason == "ObserveOnly" then
  hs.status = "Suspended"
  hs.message = reconciling.message
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif ready ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the simfleet operator"
end
return hs
