"""One router per resource; ``api_router`` puts them under the API prefix behind the API key.

Every route answers 400 to a query parameter it does not take (service.api.deps).
"""

from fastapi import APIRouter, Depends

from service.api.deps import reject_unknown_query_parameters, require_api_key
from service.api.routes import files, health, logs, table_lists, tasks

PREFIX = "/api/v0/data_pipeline"

api_router = APIRouter(prefix=PREFIX)
api_router.include_router(health.router, dependencies=[Depends(reject_unknown_query_parameters)])
for _module in (tasks, table_lists, logs, files):
    api_router.include_router(_module.router, dependencies=[Depends(require_api_key),
                                                             Depends(reject_unknown_query_parameters)])
