"""One router per resource; ``api_router`` puts them under the API prefix behind the API key."""

from fastapi import APIRouter, Depends

from service.api.deps import require_api_key
from service.api.routes import files, health, logs, table_lists, tasks

PREFIX = "/api/v0/data_pipeline"

api_router = APIRouter(prefix=PREFIX)
api_router.include_router(health.router)
for _module in (tasks, table_lists, logs, files):
    api_router.include_router(_module.router, dependencies=[Depends(require_api_key)])
