"""Typed access to what the application and the request context hold: the services
(built by `composition.build_services`) and what admission found of this request."""

from __future__ import annotations

from starlette.requests import Request

from batchyard.api.admission import Admission, Admitted
from batchyard.auth.principal import Principal
from batchyard.auth.tenancy import Tenancy
from batchyard.composition import Services
from batchyard.services.costs import CostService
from batchyard.services.dashboard import DashboardService
from batchyard.services.files import FileService
from batchyard.services.health import HealthService
from batchyard.services.inference import Inference
from batchyard.services.message_batches import BatchService
from batchyard.services.openai_batches import OpenAIBatchService
from batchyard.services.usage import UsageService
from batchyard.store.records import WorkerStatus, WorkspaceRecord


def services(request: Request) -> Services:
    value: Services = request.app.state.services
    return value


def inference(request: Request) -> Inference:
    return services(request).inference


def batch_service(request: Request) -> BatchService:
    return services(request).batches


def openai_batch_service(request: Request) -> OpenAIBatchService:
    return services(request).openai_batches


def file_service(request: Request) -> FileService:
    return services(request).files


def tenancy(request: Request) -> Tenancy:
    return services(request).tenancy


def usage(request: Request) -> UsageService:
    return services(request).usage


def costs(request: Request) -> CostService:
    return services(request).costs


def dashboard(request: Request) -> DashboardService:
    return services(request).dashboard


def health(request: Request) -> HealthService:
    return services(request).health


def worker_status(request: Request) -> WorkerStatus | None:
    """This process's worker's report of itself; None with `--no-worker`."""
    worker = services(request).worker
    return worker.status() if worker is not None else None


def admission(request: Request) -> Admission:
    value: Admission = request.app.state.admission
    return value


def admitted(request: Request) -> Admitted:
    """What the RequestContext middleware admitted this request as."""
    value: Admitted = request.state.admitted
    return value


def principal(request: Request) -> Principal:
    value = admitted(request).principal
    assert value is not None, "route is not behind admission"
    return value


def workspace_record(request: Request) -> WorkspaceRecord:
    value = admitted(request).workspace
    assert value is not None, "route acts in no workspace"
    return value


def workspace(request: Request) -> str:
    """The id of the workspace this call acts in."""
    return workspace_record(request).id
