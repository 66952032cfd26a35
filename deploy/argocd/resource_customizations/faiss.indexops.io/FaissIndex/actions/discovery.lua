-- Argo CD actions of a FaissIndex. Every action is listed; the ones that would do
-- nothing right now are disabled (and fail with a message if run anyway).
--   rebuild       always: a new build of the current spec (annotation rebuild-requested-at)
--   promote/abort only while a candidate version is rolling out (status.candidateVersion)
--   pin-previous  when a version older than the serving one can serve (see pin-previous/action.lua)
--   unpin         only while spec.rollout.pinnedVersion is set
-- pin_target is the rule of indexops_api/previous.py, repeated in pin-previous/action.lua:
-- keep the three identical (tests/unit/test_previous_version.py checks them on shared fixtures).

local function is_version(v)
  return type(v) == "string" and v ~= ""
end

local function pin_target(o)
  local st = o.status
  if st == nil or not is_version(st.currentVersion) then
    return nil
  end
  local current, candidate = st.currentVersion, st.candidateVersion
  local pinned = ((o.spec or {}).rollout or {}).pinnedVersion
  local builds = {}
  for _, build in ipairs(st.history or {}) do
    builds[#builds + 1] = build
  end
  if st.lastBuild ~= nil then
    builds[#builds + 1] = st.lastBuild
  end
  local rejected, good = {}, {}
  for _, v in ipairs({ st.lastGoodVersion, st.promotedVersion }) do
    if is_version(v) then
      good[#good + 1] = v
    end
  end
  for _, build in ipairs(builds) do
    if is_version(build.version) then
      if build.result == "Failed" or build.result == "ValidationFailed" or build.result == "RolledBack" then
        rejected[build.version] = true
      elseif build.result == "Succeeded" then
        good[#good + 1] = build.version
      end
    end
  end
  local best = nil
  for _, v in ipairs(good) do
    if v < current and v ~= candidate and v ~= pinned and not rejected[v] and (best == nil or v > best) then
      best = v
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
