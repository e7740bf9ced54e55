"""Prints every route of the installed langgraph-api app as JSON (run in a subprocess: importing
langgraph_api reads its configuration from the environment at import time)."""

import json, os
os.environ.update(MIGRATIONS_PATH="__inmem", DATABASE_URI=":memory:", REDIS_URI="fake", LANGGRAPH_RUNTIME_EDITION="inmem",
                  LANGSMITH_LANGGRAPH_API_VARIANT="local_dev", LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
from starlette.routing import Mount, WebSocketRoute
from langgraph_api.api import protected_routes, unshadowable_meta_routes, shadowable_meta_routes
out = []
for r in [*unshadowable_meta_routes, *shadowable_meta_routes, *protected_routes]:
    if isinstance(r, Mount):
        out.append(["GET", r.path + "/{path}"])
    elif isinstance(r, WebSocketRoute):
        out.append(["WS", r.path])
    else:
        for m in sorted(r.methods or ()):
            out.append([m, r.path])
print(json.dumps(out))
