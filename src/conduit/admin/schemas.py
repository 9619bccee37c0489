"""Bodies of seed 001's admin API: snake_case fields inside the `{message, data, timestamp}` envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from conduit.kit.clock import utcnow

T = TypeVar("T")

# A name that is safe in a URL path segment and a shell argument.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class Envelope(BaseModel, Generic[T]):
    message: str
    data: T
    timestamp: str


class ErrorOut(BaseModel):
    """Seed 001's error body; `code` repeats `error` for clients of the other APIs."""

    error: str = Field(description="The error code, e.g. config_not_found")
    detail: Any = Field(None, description="A sentence, or {message, problems} for invalid input")
    timestamp: str
    code: str


def envelope(message: str, data: Any = None) -> dict[str, Any]:
    return {"message": message, "data": data, "timestamp": utcnow().isoformat().replace("+00:00", "Z")}


class CreateConfig(BaseModel):
    config_name: Name
    description: str | None = Field(None, max_length=2000)


class UpdateConfig(BaseModel):
    new_config_name: Name | None = None
    description: str | None = Field(None, max_length=2000)


class CopyConfig(BaseModel):
    new_config_name: Name


class ConfigServerIn(BaseModel):
    server_name: Name
    server_command: str | None = Field(None, max_length=1024)
    args: list[str] | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048, description="Upstream URL instead of a command")
    description: str | None = Field(None, max_length=2000)
    env: dict[str, str] | None = Field(None, description="Environment for the command; stored encrypted")
    tools: list[str] | None = Field(None, description="Tools exposed in this configuration; null: all")


class ConfigServerUpdate(BaseModel):
    server_command: str | None = Field(None, max_length=1024)
    args: list[str] | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048)
    description: str | None = Field(None, max_length=2000)
    env: dict[str, str] | None = None
    tools: list[str] | None = None


class ConfigServerOut(BaseModel):
    server_id: str
    server_name: str
    server_command: str | None
    args: list[str] | None
    url: str | None
    transport: str
    description: str | None
    env: dict[str, str] = Field(description="Variable names with masked values")
    tools: list[str] | None


class ConfigOut(BaseModel):
    id: str
    config_name: str
    description: str | None
    servers: list[ConfigServerOut]
    projects: list[str]
    created_at: datetime
    updated_at: datetime


class CreateProject(BaseModel):
    project_name: Name
    description: str | None = Field(None, max_length=2000)


class UpdateProject(BaseModel):
    new_project_name: Name | None = None
    description: str | None = Field(None, max_length=2000)


class AssignConfig(BaseModel):
    config_name: Name


class ProjectOut(BaseModel):
    id: str
    project_name: str
    description: str | None
    config_name: str | None
    users: list[str]
    created_at: datetime
    updated_at: datetime


class UserEmail(BaseModel):
    email: EmailStr = Field(max_length=320)


class CreateUser(UserEmail):
    role: str = "viewer"


class UpdateUser(BaseModel):
    role: str


class UserOut(BaseModel):
    id: str
    email: str
    role: str
    projects: list[str]
    created_at: datetime


class CreateUserKey(BaseModel):
    project_name: Name
    name: str | None = Field(None, max_length=200)


class UserKeyOut(BaseModel):
    key_id: str
    name: str
    project_name: str | None
    prefix: str
    status: str
    api_key: str | None = Field(None, description="The full key: returned once, at creation or rotation")
    created_at: datetime
    last_used_at: datetime | None


class BackupRequest(BaseModel):
    include_secrets: bool = False
    passphrase: str | None = Field(None, min_length=12, max_length=1024)


class RestoreRequest(BaseModel):
    backup: dict[str, Any]
    passphrase: str | None = Field(None, max_length=1024)
