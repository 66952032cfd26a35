-- Declarative rollback: set spec.rollout.pinnedVersion to the previous version, by the
-- rule stated once in indexops_api/previous.py (tests/unit/test_previous_version.py runs
-- this script and the Python on the same fixtures):
--   the newest version older than status.currentVersion that status names as good
--   (lastGoodVersion, promotedVersion, a Succeeded build in lastBuild/history), never
--   rejected (a build of it Failed, ValidationFailed or RolledBack), and not the
--   candidate or the version already pinned (so pressing it again goes one more version
--   back). Nothing is previous while nothing serves. Version ids sort by build time.
-- This edits spec: with automated sync and selfHeal Argo CD reverts it; see
-- docs/argocd.md. Same function as in discovery.lua.

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

local target = pin_target(obj)
if target == nil then
  error("pin-previous: no earlier good version to pin (status names none older than the serving one that was not rejected); pin one explicitly with faissctl pin NAME VERSION", 0)
end
if obj.spec.rollout == nil then
  obj.spec.rollout = {}
end
obj.spec.rollout.pinnedVersion = target
return obj
