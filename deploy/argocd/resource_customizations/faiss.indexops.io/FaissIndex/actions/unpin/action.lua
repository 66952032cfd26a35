-- Remove spec.rollout.pinnedVersion: the last good version serves again and a newer
-- held build rolls out normally. This edits spec: with automated sync and selfHeal
-- Argo CD reverts it; see docs/argocd.md.
local rollout = obj.spec.rollout
if rollout == nil or type(rollout.pinnedVersion) ~= "string" or rollout.pinnedVersion == "" then
  error("unpin: spec.rollout.pinnedVersion is not set", 0)
end
rollout.pinnedVersion = nil
if next(rollout) == nil then
  -- Argo CD turns an emptied map back into the original one (Lua has no empty-map
  -- value): drop spec.rollout itself instead.
  obj.spec.rollout = nil
end
return obj
