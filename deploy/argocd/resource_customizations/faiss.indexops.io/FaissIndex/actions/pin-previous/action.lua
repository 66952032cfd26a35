-- Declarative rollback: set spec.rollout.pinnedVersion to the version before the one
-- serving. Version ids sort by build time, so "before" is a plain comparison:
--   1. status.lastGoodVersion, when it differs from currentVersion and is older;
--   2. else the newest status.history build with result Succeeded that is older than
--      currentVersion.
-- Never the current, the candidate or the already pinned version (so pressing it again
-- goes one more version back). This edits spec: with automated sync and selfHeal Argo CD
-- reverts it; see docs/argocd.md. Same choice as in discovery.lua.

local function is_version(v)
  return type(v) == "string" and v ~= ""
end

local function pin_target(o)
  local st = o.status
  if st == nil then
    return nil
  end
  local current, candidate = st.currentVersion, st.candidateVersion
  local pinned = ((o.spec or {}).rollout or {}).pinnedVersion
  local function eligible(v)
    return is_version(v) and v ~= current and v ~= candidate and v ~= pinned and (not is_version(current) or v < current)
  end
  if eligible(st.lastGoodVersion) then
    return st.lastGoodVersion
  end
  local best = nil
  for _, build in ipairs(st.history or {}) do
    if build.result == "Succeeded" and eligible(build.version) and (best == nil or build.version > best) then
      best = build.version
    end
  end
  return best
end

local target = pin_target(obj)
if target == nil then
  error("pin-previous: no earlier successful version to pin (status.lastGoodVersion and status.history have none older than the serving one)", 0)
end
if obj.spec.rollout == nil then
  obj.spec.rollout = {}
end
obj.spec.rollout.pinnedVersion = target
return obj
