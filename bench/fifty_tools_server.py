"""A harmless 50-tool MCP server for bench/scan.py, written with the official `mcp` SDK: the kind
of "workspace assistant" a team wires into its agents (files, git, issues, CI, calendar, mail,
database, notes, tasks, weather, time), plus three resources, a resource template and three
prompts. Nothing is ever done: each tool only says what it would do, since a scan never calls one.

    .venv/bin/python bench/fifty_tools_server.py http --port 8765    # http://127.0.0.1:8765/mcp
    .venv/bin/python bench/fifty_tools_server.py stdio
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

INSTRUCTIONS = (
    "Workspace assistant for the Acme platform team. Use the git and file tools inside the "
    "checked-out repository only; ask before sending mail or deleting anything."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
WRITES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
REMOTE_READ = ToolAnnotations(readOnlyHint=True, openWorldHint=True)

mcp: MCPServer[Any] = MCPServer("acme-workspace", version="3.2.1", instructions=INSTRUCTIONS)

Path = Annotated[str, Field(description="Path relative to the repository root")]
IssueNumber = Annotated[int, Field(description="The issue number, e.g. 1234", ge=1)]
Limit = Annotated[int, Field(description="Maximum number of results", ge=1, le=200)]


def _would(action: str, **details: Any) -> str:
    return f"would {action}: " + ", ".join(f"{k}={v!r}" for k, v in details.items())


# --- files (7) ---------------------------------------------------------------------------------


@mcp.tool(annotations=READ_ONLY)
def read_file(path: Path, encoding: str = "utf-8") -> str:
    """Read a text file from the repository and return its contents."""
    return _would("read", path=path, encoding=encoding)


@mcp.tool(annotations=WRITES)
def write_file(path: Path, content: Annotated[str, Field(description="The new file contents")]) -> str:
    """Create a file or replace its contents. Parent directories are created as needed."""
    return _would("write", path=path, size=len(content))


@mcp.tool(annotations=READ_ONLY)
def list_directory(path: Path = ".", include_hidden: bool = False) -> str:
    """List the files and directories at a path, with sizes and modification times."""
    return _would("list", path=path, include_hidden=include_hidden)


@mcp.tool(annotations=READ_ONLY)
def search_files(
    pattern: Annotated[str, Field(description="Glob pattern, e.g. 'src/**/*.py'")],
    contains: Annotated[str | None, Field(description="Only files containing this text")] = None,
    limit: Limit = 50,
) -> str:
    """Find files by name pattern, optionally only those containing a given text."""
    return _would("search", pattern=pattern, contains=contains, limit=limit)


@mcp.tool(annotations=WRITES)
def move_file(source: Path, destination: Path) -> str:
    """Move or rename a file within the repository."""
    return _would("move", source=source, destination=destination)


@mcp.tool(annotations=DESTRUCTIVE)
def delete_file(path: Path) -> str:
    """Delete a file from the working tree. Ask the user to confirm before using this."""
    return _would("delete", path=path)


@mcp.tool(annotations=READ_ONLY)
def file_info(path: Path) -> str:
    """Size, permissions, owner and last modification time of a file."""
    return _would("stat", path=path)


# --- git (6) -----------------------------------------------------------------------------------


@mcp.tool(annotations=READ_ONLY)
def git_status() -> str:
    """Show the working tree status: staged, unstaged and untracked files."""
    return _would("git status")


@mcp.tool(annotations=READ_ONLY)
def git_log(
    max_count: Limit = 20,
    path: Annotated[str | None, Field(description="Only commits touching this path")] = None,
) -> str:
    """Show recent commits with author, date and message."""
    return _would("git log", max_count=max_count, path=path)


@mcp.tool(annotations=READ_ONLY)
def git_diff(
    target: Annotated[str, Field(description="Commit, branch or 'HEAD'")] = "HEAD",
    staged: bool = False,
) -> str:
    """Show changes between the working tree (or the index) and a commit."""
    return _would("git diff", target=target, staged=staged)


@mcp.tool(annotations=WRITES)
def git_commit(message: Annotated[str, Field(description="The commit message", min_length=1)]) -> str:
    """Record the staged changes as a new commit."""
    return _would("git commit", message=message)


@mcp.tool(annotations=READ_ONLY)
def git_branch_list(include_remote: bool = False) -> str:
    """List local branches, and remote-tracking branches if asked."""
    return _would("git branch", include_remote=include_remote)


@mcp.tool(annotations=WRITES)
def git_checkout(
    branch: Annotated[str, Field(description="Branch to switch to")], create: bool = False
) -> str:
    """Switch to a branch, optionally creating it from the current HEAD."""
    return _would("git checkout", branch=branch, create=create)


# --- issues (6) --------------------------------------------------------------------------------


@mcp.tool(annotations=REMOTE_READ)
def list_issues(
    state: Literal["open", "closed", "all"] = "open",
    label: Annotated[str | None, Field(description="Only issues with this label")] = None,
    assignee: Annotated[str | None, Field(description="Username of the assignee")] = None,
    limit: Limit = 30,
) -> str:
    """List issues in the project's tracker, newest first."""
    return _would("list issues", state=state, label=label, assignee=assignee, limit=limit)


@mcp.tool(annotations=REMOTE_READ)
def get_issue(number: IssueNumber) -> str:
    """Get an issue with its description, labels, assignees and comments."""
    return _would("get issue", number=number)


@mcp.tool(annotations=WRITES)
def create_issue(
    title: Annotated[str, Field(description="A one-line summary", max_length=256)],
    body: Annotated[str, Field(description="Markdown description")] = "",
    labels: Annotated[list[str] | None, Field(description="Labels to apply")] = None,
) -> str:
    """Open a new issue in the project's tracker."""
    return _would("create issue", title=title, labels=labels, size=len(body))


@mcp.tool(annotations=WRITES)
def update_issue(
    number: IssueNumber,
    title: str | None = None,
    labels: list[str] | None = None,
    assignees: list[str] | None = None,
) -> str:
    """Change an issue's title, labels or assignees."""
    return _would("update issue", number=number, title=title, labels=labels, assignees=assignees)


@mcp.tool(annotations=WRITES)
def add_issue_comment(
    number: IssueNumber, body: Annotated[str, Field(description="Markdown comment")]
) -> str:
    """Add a comment to an issue."""
    return _would("comment", number=number, size=len(body))


@mcp.tool(annotations=WRITES)
def close_issue(
    number: IssueNumber, reason: Literal["completed", "not_planned", "duplicate"] = "completed"
) -> str:
    """Close an issue with a reason."""
    return _would("close issue", number=number, reason=reason)


# --- CI (3) ------------------------------------------------------------------------------------


@mcp.tool(annotations=REMOTE_READ)
def list_pipelines(
    branch: str | None = None, status: Literal["running", "failed", "passed"] | None = None
) -> str:
    """List recent CI pipelines, optionally for one branch or status."""
    return _would("list pipelines", branch=branch, status=status)


@mcp.tool(annotations=REMOTE_READ)
def get_pipeline_logs(
    pipeline_id: Annotated[str, Field(description="The pipeline id from list_pipelines")],
    job: Annotated[str | None, Field(description="Only this job's log")] = None,
    tail_lines: Annotated[int, Field(ge=1, le=5000)] = 200,
) -> str:
    """Fetch the log of a pipeline's jobs (the last lines by default)."""
    return _would("fetch logs", pipeline_id=pipeline_id, job=job, tail_lines=tail_lines)


@mcp.tool(annotations=WRITES)
def retry_pipeline(pipeline_id: str) -> str:
    """Re-run the failed jobs of a pipeline."""
    return _would("retry", pipeline_id=pipeline_id)


# --- calendar (4) ------------------------------------------------------------------------------


Timestamp = Annotated[str, Field(description="ISO 8601 date-time, e.g. 2025-06-01T09:30:00+02:00")]


@mcp.tool(annotations=REMOTE_READ)
def list_events(start: Timestamp, end: Timestamp, calendar: str = "primary") -> str:
    """List calendar events between two times."""
    return _would("list events", start=start, end=end, calendar=calendar)


@mcp.tool(annotations=WRITES)
def create_event(
    title: str,
    start: Timestamp,
    end: Timestamp,
    attendees: Annotated[list[str] | None, Field(description="Attendee email addresses")] = None,
    location: str | None = None,
) -> str:
    """Create a calendar event and invite the attendees."""
    return _would("create event", title=title, start=start, end=end, attendees=attendees, location=location)


@mcp.tool(annotations=DESTRUCTIVE)
def delete_event(event_id: str, notify_attendees: bool = True) -> str:
    """Cancel a calendar event."""
    return _would("cancel event", event_id=event_id, notify_attendees=notify_attendees)


@mcp.tool(annotations=REMOTE_READ)
def find_free_slots(
    attendees: list[str],
    duration_minutes: Annotated[int, Field(ge=5, le=480)] = 30,
    within_days: Annotated[int, Field(ge=1, le=30)] = 7,
) -> str:
    """Find times when all attendees are free for a meeting of the given length."""
    return _would(
        "find slots", attendees=attendees, duration_minutes=duration_minutes, within_days=within_days
    )


# --- mail (4) ----------------------------------------------------------------------------------


@mcp.tool(annotations=REMOTE_READ)
def search_messages(
    query: Annotated[str, Field(description="Search terms, e.g. 'from:alice invoice'")], limit: Limit = 20
) -> str:
    """Search the mailbox and return matching message headers."""
    return _would("search mail", query=query, limit=limit)


@mcp.tool(annotations=REMOTE_READ)
def read_message(message_id: str) -> str:
    """Read one email message: headers, text body and attachment names."""
    return _would("read message", message_id=message_id)


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=True))
def send_message(
    to: Annotated[list[str], Field(description="Recipient addresses")],
    subject: str,
    body: Annotated[str, Field(description="Plain-text body")],
    cc: list[str] | None = None,
) -> str:
    """Send an email. Show the user the recipients and text and ask for confirmation first."""
    return _would("send", to=to, cc=cc, subject=subject, size=len(body))


@mcp.tool(annotations=WRITES)
def create_draft(to: list[str], subject: str, body: str) -> str:
    """Save an email as a draft without sending it."""
    return _would("draft", to=to, subject=subject, size=len(body))


# --- database (3) ------------------------------------------------------------------------------


@mcp.tool(annotations=READ_ONLY)
def list_tables(schema: str = "public") -> str:
    """List the tables of a database schema with their row estimates."""
    return _would("list tables", schema=schema)


@mcp.tool(annotations=READ_ONLY)
def describe_table(
    table: Annotated[str, Field(description="Table name, optionally schema-qualified")],
) -> str:
    """Show a table's columns, types, indexes and foreign keys."""
    return _would("describe", table=table)


@mcp.tool(annotations=READ_ONLY)
def run_readonly_query(
    sql: Annotated[str, Field(description="A single SELECT statement")],
    max_rows: Annotated[int, Field(ge=1, le=10000)] = 100,
) -> str:
    """Run a read-only SQL query in a transaction that is rolled back, and return the rows."""
    return _would("query", sql=sql, max_rows=max_rows)


# --- web (2) -----------------------------------------------------------------------------------


@mcp.tool(annotations=REMOTE_READ)
def fetch_url(
    url: Annotated[str, Field(description="An http(s) URL")],
    max_length: Annotated[int, Field(ge=100, le=1_000_000)] = 20000,
) -> str:
    """Fetch a web page and return it as simplified Markdown."""
    return _would("fetch", url=url, max_length=max_length)


@mcp.tool(annotations=REMOTE_READ)
def search_docs(query: str, product: Literal["platform", "api", "cli"] = "platform", limit: Limit = 5) -> str:
    """Search Acme's product documentation and return the best-matching sections."""
    return _would("search docs", query=query, product=product, limit=limit)


# --- notes and tasks (7) -----------------------------------------------------------------------


@mcp.tool(annotations=WRITES)
def create_note(title: str, content: str, tags: list[str] | None = None) -> str:
    """Save a Markdown note to the team's knowledge base."""
    return _would("create note", title=title, tags=tags, size=len(content))


@mcp.tool(annotations=READ_ONLY)
def list_notes(tag: str | None = None, limit: Limit = 50) -> str:
    """List notes, newest first, optionally with a tag."""
    return _would("list notes", tag=tag, limit=limit)


@mcp.tool(annotations=READ_ONLY)
def search_notes(query: str, limit: Limit = 10) -> str:
    """Full-text search over notes."""
    return _would("search notes", query=query, limit=limit)


@mcp.tool(annotations=DESTRUCTIVE)
def delete_note(note_id: str) -> str:
    """Delete a note permanently."""
    return _would("delete note", note_id=note_id)


@mcp.tool(annotations=WRITES)
def add_task(
    title: str,
    due: Annotated[str | None, Field(description="Due date, YYYY-MM-DD")] = None,
    priority: Literal["low", "normal", "high"] = "normal",
) -> str:
    """Add a task to the user's to-do list."""
    return _would("add task", title=title, due=due, priority=priority)


@mcp.tool(annotations=WRITES)
def complete_task(task_id: str) -> str:
    """Mark a task as done."""
    return _would("complete task", task_id=task_id)


@mcp.tool(annotations=READ_ONLY)
def list_tasks(include_done: bool = False) -> str:
    """List the user's tasks with their due dates and priorities."""
    return _would("list tasks", include_done=include_done)


# --- weather, time and small utilities (8) -----------------------------------------------------


@mcp.tool(annotations=REMOTE_READ)
def get_forecast(
    latitude: Annotated[float, Field(ge=-90, le=90)],
    longitude: Annotated[float, Field(ge=-180, le=180)],
    days: Annotated[int, Field(ge=1, le=10)] = 3,
) -> str:
    """Weather forecast for a location: temperature, precipitation and wind per day."""
    return _would("forecast", latitude=latitude, longitude=longitude, days=days)


@mcp.tool(annotations=REMOTE_READ)
def get_current_weather(city: Annotated[str, Field(description="City name, e.g. 'Lyon, FR'")]) -> str:
    """Current weather conditions in a city."""
    return _would("weather", city=city)


@mcp.tool(annotations=READ_ONLY)
def get_current_time(timezone: Annotated[str, Field(description="IANA time zone, e.g. Europe/Paris")]) -> str:
    """The current date and time in a time zone."""
    return _would("tell the time", timezone=timezone)


@mcp.tool(annotations=READ_ONLY)
def convert_time(
    time: Annotated[str, Field(description="HH:MM, 24-hour")], source_timezone: str, target_timezone: str
) -> str:
    """Convert a time of day from one time zone to another."""
    return _would("convert", time=time, source_timezone=source_timezone, target_timezone=target_timezone)


@mcp.tool(annotations=READ_ONLY)
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units (length, mass, temperature, data sizes)."""
    return _would("convert units", value=value, from_unit=from_unit, to_unit=to_unit)


@mcp.tool(annotations=READ_ONLY)
def calculate(expression: Annotated[str, Field(description="Arithmetic, e.g. '(3 + 4) * 2'")]) -> str:
    """Evaluate an arithmetic expression with + - * / ^ and parentheses."""
    return _would("calculate", expression=expression)


@mcp.tool(annotations=READ_ONLY)
def lookup_contact(name_or_email: str) -> str:
    """Find a colleague in the company directory: name, team, email and time zone."""
    return _would("look up", name_or_email=name_or_email)


@mcp.tool(annotations=REMOTE_READ)
def translate_text(text: str, target_language: Annotated[str, Field(description="ISO 639-1 code")]) -> str:
    """Translate text into another language."""
    return _would("translate", target_language=target_language, size=len(text))


# --- resources and prompts ---------------------------------------------------------------------


@mcp.resource(
    "config://workspace",
    name="workspace",
    description="The workspace's settings",
    mime_type="application/json",
)
def workspace_config() -> str:
    return '{"repository": "acme/platform", "default_branch": "main", "tracker": "acme/platform"}'


@mcp.resource(
    "docs://contributing", name="contributing", description="How to contribute", mime_type="text/markdown"
)
def contributing() -> str:
    return "# Contributing\n\nOpen an issue first, then a pull request against main."


@mcp.resource("docs://oncall", name="oncall", description="This week's on-call rota", mime_type="text/plain")
def oncall() -> str:
    return "Primary: alice@example.com\nSecondary: bob@example.com"


@mcp.resource("notes://{note_id}", name="note", description="One note by id", mime_type="text/markdown")
def note(note_id: str) -> str:
    return f"# Note {note_id}"


@mcp.prompt(description="Review a diff for bugs, style and missing tests")
def code_review(diff: str) -> str:
    return f"Review this change for correctness, style and missing tests:\n\n{diff}"


@mcp.prompt(description="Summarise an issue and its discussion")
def summarize_issue(number: str) -> str:
    return f"Summarise issue #{number}: the problem, what was tried, and what is left to decide."


@mcp.prompt(description="Draft release notes from commits since a tag")
def release_notes(since_tag: str) -> str:
    return f"Write release notes for the changes since {since_tag}, grouped by feature, fix and chore."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
