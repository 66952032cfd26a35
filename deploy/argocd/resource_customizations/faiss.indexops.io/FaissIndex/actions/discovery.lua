-- Argo CD actions of a FaissIndex. Every action is listed; the ones that would do
-- nothing right now are disabled (and fail with a message if run anyway).
--   rebuild       always: a new build of the current spec (annotation rebuild-requested-at)
--   promote/abort only while a candidate version is rolling out (status.candidateVersion)
--   pin-previous  when a version older than the serving one can serve (see pin-previous/action.lua)
--   unpin         only while spec.rollout.pinnedVersion is set
-- The pin-previous choice is repeated in pin-previous/action.lua: keep the two identical.

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

local st = obj.status or {}
local rollout = (obj.spec or {}).rollout or {}
local actions = {}
actions["rebuild"] = { disabled = false, displayName = "Rebuild index" }
actions["promote"] = { disabled = not is_version(st.candidateVersion), displayName = "Promote candidate to 100%" }
actions["abort"] = { disabled = not is_version(st.candidateVersion), displayName = "Abort candidate rollout" }
actions["pin-previous"] = { disabled = pin_target(obj) == nil, displayName = "Pin previous version" }
actions["unpin"] = { disabled = not is_version(rollout.pinnedVersion), displayName = "Unpin version" }
return actions
