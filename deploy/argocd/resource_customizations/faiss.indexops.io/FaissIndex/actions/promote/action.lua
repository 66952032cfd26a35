-- Promote the candidate version to 100% now: a new value of the annotation
-- faiss.indexops.io/promote-requested-at, handled once by the operator.
local st = obj.status or {}
if type(st.candidateVersion) ~= "string" or st.candidateVersion == "" then
  error("promote: no candidate version is rolling out (status.candidateVersion is empty)", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["faiss.indexops.io/promote-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
