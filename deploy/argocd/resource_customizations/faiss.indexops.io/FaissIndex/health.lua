-- Argo CD health of a FaissIndex (faiss.indexops.io/v1alpha1), read from the conditions
-- the operator writes. Decision table and reasoning: docs/argocd.md. The first rule that
-- matches wins:
--   being deleted                                    -> Progressing
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing
--   Degraded=True reason InvalidSpec or StorageNotAllowed -> Degraded
--   Stalled=True                                     -> Degraded
--   Degraded=True (any other reason, even while an older version serves) -> Degraded,
--     except SourceDrift / ArtifactsMissing while a build runs (the build repairs them)
--   Progressing=True (Building, RollingOut, ReplicasConverging) -> Progressing
--   Ready not True, except NoVersionYet (ServingUnavailable) -> Progressing
--   spec.suspend (Progressing reason Suspended)      -> Suspended
--   Ready=True (Serving, Pinned, ServingDisabled)    -> Healthy
--   anything else (Ready=False NoVersionYet and idle, no Ready condition) -> Progressing
-- Argo CD runs this without Lua's string and math libraries: plain operators only.

local REPAIRED_BY_A_BUILD = { SourceDrift = true, ArtifactsMissing = true }

local function find(conditions, ctype)
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c)
  local text = c.reason or "NoReason"
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local function health(status, message)
  return { status = status, message = message }
end

local function assess(obj)
  local meta = obj.metadata or {}
  if meta.deletionTimestamp ~= nil then
    return health("Progressing", "Being deleted: the operator applies storage.deletionPolicy, then removes its finalizer")
  end
  local st = obj.status
  if st == nil or st.conditions == nil or #st.conditions == 0 then
    return health("Progressing", "Waiting for the operator to report status")
  end
  local generation, observed = meta.generation, st.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    local seen = "none"
    if observed ~= nil then
      seen = tostring(observed)
    end
    return health("Progressing", "Waiting for the operator to observe generation " .. tostring(generation) ..
      " (observed: " .. seen .. ")")
  end

  local ready = find(st.conditions, "Ready")
  local progressing = find(st.conditions, "Progressing")
  local degraded = find(st.conditions, "Degraded")
  local stalled = find(st.conditions, "Stalled")

  -- An invalid spec (or storage the platform did not grant) is not reconciled:
  -- the other conditions are stale.
  if is_true(degraded) and (degraded.reason == "InvalidSpec" or degraded.reason == "StorageNotAllowed") then
    return health("Degraded", describe(degraded))
  end
  if is_true(stalled) then
    return health("Degraded", "Stalled (" .. describe(stalled) .. ")")
  end
  local building = is_true(progressing) and progressing.reason == "Building"
  if is_true(degraded) and not (building and REPAIRED_BY_A_BUILD[degraded.reason]) then
    local message = describe(degraded)
    if is_true(ready) and st.currentVersion ~= nil then
      message = message .. " (serving: " .. st.currentVersion .. ")"
    end
    return health("Degraded", message)
  end
  if is_true(progressing) then
    local message = describe(progressing)
    if is_true(degraded) then
      message = message .. "; " .. describe(degraded)
    end
    return health("Progressing", message)
  end
  -- A version exists but not enough serving replicas are ready (ServingUnavailable):
  -- serving is catching up.
  if ready ~= nil and ready.status ~= "True" and ready.reason ~= "NoVersionYet" then
    return health("Progressing", describe(ready))
  end
  local spec = obj.spec or {}
  if (progressing ~= nil and progressing.reason == "Suspended") or spec.suspend == true then
    local message = "Suspended (spec.suspend): no scheduled or drift-triggered builds"
    if ready ~= nil then
      message = message .. "; " .. describe(ready)
    end
    return health("Suspended", message)
  end
  if is_true(ready) then
    return health("Healthy", describe(ready))
  end
  if ready ~= nil then
    return health("Progressing", describe(ready)) -- NoVersionYet, nothing building
  end
  return health("Progressing", "Waiting for the operator to report the Ready condition")
end

return assess(obj)
