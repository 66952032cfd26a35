-- Request a rebuild of the current spec: a new value of the annotation
-- faiss.indexops.io/rebuild-requested-at (UTC, same form as `date -u +%FT%TZ`).
-- The operator builds once per new value; a running build finishes first.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["faiss.indexops.io/rebuild-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
