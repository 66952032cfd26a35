"""Names that form the public contract: API group, labels, annotations, env vars."""

GROUP = "faiss.indexops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FaissIndex"
PLURAL = "faissindexes"
SINGULAR = "faissindex"
SHORT_NAMES = ["fi", "faiss"]

PART_OF = "faiss-index-operator"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INDEX = f"{GROUP}/index"
LABEL_BUILD_KEY = f"{GROUP}/build-key"

ANNOTATION_VERSION = f"{GROUP}/version"
ANNOTATION_BUILD_KEY = f"{GROUP}/build-key"
ANNOTATION_REBUILD = f"{GROUP}/rebuild-requested-at"
# Manual rollout controls (faissctl promote/abort, ArgoCD actions): each new value is handled once.
ANNOTATION_PROMOTE = f"{GROUP}/promote-requested-at"
ANNOTATION_ABORT = f"{GROUP}/abort-requested-at"
ANNOTATION_BUILD_NUMBER = f"{GROUP}/build-number"
ANNOTATION_TRIGGER = f"{GROUP}/trigger"
# Sharded builds: which stage a builder Job runs, and the train Job a later stage belongs to.
ANNOTATION_BUILD_STAGE = f"{GROUP}/build-stage"
ANNOTATION_PARENT_JOB = f"{GROUP}/parent-job"

# Environment variables the operator sets on builder and serving pods.
ENV_BUILD_REQUEST = "FAISS_BUILD_REQUEST"
ENV_POINTER_BUCKET = "FAISS_POINTER_BUCKET"
ENV_POINTER_KEY = "FAISS_POINTER_KEY"
ENV_S3_ENDPOINT = "FAISS_S3_ENDPOINT_URL"
ENV_POD_IP = "POD_IP"

MANIFEST_FILE = "manifest.json"
POINTER_FILE = "pointer.json"
ENV_SERVING_PORT = "FAISS_SERVING_PORT"
ENV_POLL_SECONDS = "FAISS_POLL_SECONDS"
ENV_CACHE_DIR = "FAISS_CACHE_DIR"
ENV_SEARCH_THREADS = "FAISS_SEARCH_THREADS"
ENV_TERMINATION_MESSAGE_PATH = "TERMINATION_MESSAGE_PATH"
ENV_POSTGRES_DSN = "FAISS_POSTGRES_DSN"
