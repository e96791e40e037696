"""The contract every metadata database backend (SQLite, PostgreSQL) passes."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from kiln.core import audit
from kiln.core._tables import audit_events, tokens
from kiln.core.auth import TokenService, authenticate
from kiln.core.context import Context, local_context
from kiln.core.errors import AlreadyExists, PermissionDenied, Unauthenticated
from kiln.core.workspace import Workspace


class MetadataStoreContract:
    """Provide a ``workspace`` fixture on a fresh, empty database."""

    @pytest.fixture
    def workspace(self) -> Workspace:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_migrations_reach_every_head_and_are_idempotent(self, workspace: Workspace) -> None:
        assert workspace.db.pending() == set()
        before = workspace.db.current()
        workspace.db._migrated = False
        workspace.db.migrate()
        assert workspace.db.current() == before and workspace.db.pending() == set()

    def test_write_commits_and_failure_rolls_back(self, workspace: Workspace) -> None:
        ctx = local_context()
        with pytest.raises(RuntimeError), workspace.mutation(ctx, action="t.x", resource="t/1") as (conn, _):
            conn.execute(audit_events.delete())
            raise RuntimeError("boom")
        with workspace.db.read() as conn:
            events = audit.list_events(conn)
        assert [e.outcome for e in events] == ["failure"]
        assert events[0].details["error"] == "internal"

    def test_mutation_audits_in_the_same_transaction(self, workspace: Workspace) -> None:
        ctx = Context(actor="token:ci", role="editor", source="10.0.0.9", request_id="req-1")
        with workspace.mutation(ctx, action="things.make", resource="things/a", details={"n": 1}):
            pass
        with workspace.db.read() as conn:
            (event,) = audit.list_events(conn)
        assert (event.actor, event.action, event.resource, event.request_id, event.source, event.outcome) == ("token:ci", "things.make", "things/a", "req-1", "10.0.0.9", "success")
        assert event.details == {"n": 1}

    def test_roles_are_enforced_before_writing(self, workspace: Workspace) -> None:
        viewer = Context(actor="token:v", role="viewer")
        with pytest.raises(PermissionDenied), workspace.mutation(viewer, action="x", resource="y"):
            pass

    def test_tokens_create_authenticate_revoke(self, workspace: Workspace) -> None:
        svc = TokenService(workspace, local_context())
        token = svc.create(name="bot", role="editor")
        ctx = authenticate(workspace, token.token, source="127.0.0.1", request_id="r")
        assert (ctx.actor, ctx.role) == ("token:bot", "editor")
        with pytest.raises(AlreadyExists):
            svc.create(name="bot", role="viewer")
        assert svc.revoke(name="bot").revoked and svc.list()[0].revoked
        when = sa.select(tokens.c.revoked_at).where(tokens.c.name == "bot")
        with workspace.db.read() as conn:
            first = conn.execute(when).scalar_one()
        svc.revoke(name="bot")
        with workspace.db.read() as conn:
            assert conn.execute(when).scalar_one() == first, "revoking twice keeps the first time"
        with pytest.raises(Unauthenticated):
            authenticate(workspace, token.token, source="127.0.0.1", request_id="r")
        with pytest.raises(Unauthenticated):
            authenticate(workspace, "kiln_made_up", source="127.0.0.1", request_id="r")

    def test_concurrent_audited_writers_keep_one_chain(self, workspace: Workspace) -> None:
        ctx = local_context()

        def work(i: int) -> None:
            for j in range(10):
                with workspace.mutation(ctx, action="t.write", resource=f"t/{i}/{j}"):
                    pass

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = workspace.verify_audit()
        assert result.ok and result.checked == 40

    @pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last", "reorder"])
    def test_verify_names_the_first_tampered_event(self, workspace: Workspace, tamper: str) -> None:
        ctx = local_context()
        for i in range(5):
            with workspace.mutation(ctx, action="t.write", resource=f"t/{i}"):
                pass
        e = audit_events
        with workspace.db.engine.begin() as conn:
            if tamper == "edit":
                conn.execute(e.update().where(e.c.seq == 3).values(resource="t/forged"))
            elif tamper == "delete_middle":
                conn.execute(e.delete().where(e.c.seq == 3))
            elif tamper == "delete_last":
                conn.execute(e.delete().where(e.c.seq == 5))
            else:
                conn.execute(e.update().where(e.c.seq == 2).values(seq=-2))
                conn.execute(e.update().where(e.c.seq == 3).values(seq=2))
                conn.execute(e.update().where(e.c.seq == -2).values(seq=3))
        result = workspace.verify_audit()
        assert not result.ok
        assert result.first_bad_seq == {"edit": 3, "delete_middle": 3, "delete_last": 5, "reorder": 2}[tamper], result
        assert result.problem

    def test_audit_filters(self, workspace: Workspace) -> None:
        for actor, res in [("local:a", "datasets/x"), ("local:b", "datasets/y"), ("local:a", "models/m")]:
            with workspace.mutation(Context(actor=actor), action="t", resource=res):
                pass
        with workspace.db.read() as conn:
            assert len(audit.list_events(conn, actor="local:a")) == 2
            assert [e.resource for e in audit.list_events(conn, resource="datasets")] == ["datasets/y", "datasets/x"]
            assert audit.list_events(conn, since=9e12) == []
            assert len(audit.list_events(conn, limit=1)) == 1

    def test_sql_text_is_portable(self, workspace: Workspace) -> None:
        with workspace.db.read() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
