-- Abort the rollout of the candidate version: a new value of the annotation
-- faiss.indexops.io/abort-requested-at, handled once by the operator. The candidate
-- leaves rotation for good (RolledBack); the current version serves 100%.
local st = obj.status or {}
if type(st.candidateVersion) ~= "string" or st.candidateVersion == "" then
  error("abort: no candidate version is rolling out (status.candidateVersion is empty)", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["faiss.indexops.io/abort-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
