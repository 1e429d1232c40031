"""Python SDK for Recollect, the multi-tenant, MotorHead-compatible chat memory server.

    from recollect_client import Recollect, Message

    with Recollect("http://127.0.0.1:8080", api_key="rk_...") as memory:
        memory.append("chat-42", [Message(role="user", content="Ship on the 14th?")])
        print(memory.get_memory("chat-42").messages)

``AsyncRecollect`` has the same methods as coroutines; ``RecollectAdmin`` and
``AsyncRecollectAdmin`` drive ``/admin``. LangChain: ``recollect_client.langchain``.
"""

from recollect_client._transport import VERSION as __version__
from recollect_client._transport import AsyncExportStream, ExportStream
from recollect_client.async_client import AsyncRecollect, AsyncRecollectAdmin
from recollect_client.client import Recollect, RecollectAdmin
from recollect_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RecollectError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from recollect_client.models import (
    AppendResult,
    Context,
    ContextMessage,
    CurrentKey,
    HistoryPage,
    ImportResult,
    KeyCreated,
    KeyInfo,
    Memory,
    Message,
    RetrievalHit,
    SearchHit,
    SearchMode,
    StoredMessage,
    Tenant,
    TenantCreated,
    TenantDeleted,
    TenantPolicy,
    ToolCall,
    ToolFunction,
    Usage,
    UsageCounter,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AppendResult",
    "AsyncExportStream",
    "AsyncRecollect",
    "AsyncRecollectAdmin",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Context",
    "ContextMessage",
    "CurrentKey",
    "ExportStream",
    "HistoryPage",
    "ImportResult",
    "InternalServerError",
    "InvalidRequestError",
    "KeyCreated",
    "KeyInfo",
    "Memory",
    "Message",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "Recollect",
    "RecollectAdmin",
    "RecollectError",
    "RetrievalHit",
    "SearchHit",
    "SearchMode",
    "ServiceUnavailableError",
    "StoredMessage",
    "Tenant",
    "TenantCreated",
    "TenantDeleted",
    "TenantPolicy",
    "ToolCall",
    "ToolFunction",
    "UnsupportedMediaTypeError",
    "Usage",
    "UsageCounter",
    "ValidationError",
    "__version__",
]
