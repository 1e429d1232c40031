"""Every Redis command on tenant records and API key records (``keyspace`` names them)."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from app.domain.keyspace import Keyspace
from app.domain.redis_access import Script, translates_outages


@dataclass(frozen=True, slots=True)
class TenantRecord:
    name: str
    created_at: str
    policy_json: bytes  # the overrides an operator set, as JSON


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    created_at: str
    label: str | None
    last_used_at: str | None


@dataclass(frozen=True, slots=True)
class StoredSecret:
    secret_hash: str
    tenant_id: str


@translates_outages
class TenancyStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        self._touch = Script(__package__, "touch_api_key.lua")

    # --- tenants -----------------------------------------------------------------------

    def claim_tenant(self, tenant_id: str, created_at: str) -> bool:
        """Create the record if no tenant has the id: the existence check and the claim
        in one command. False when the id is taken."""
        return bool(self._redis.hsetnx(self._keys.tenant(tenant_id), "created_at", created_at))

    def write_tenant(self, tenant_id: str, record: TenantRecord, *, listed: bool = False) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(
            self._keys.tenant(tenant_id),
            mapping={"name": record.name, "created_at": record.created_at, "policy": record.policy_json},
        )
        if listed:
            pipe.sadd(self._keys.tenants, tenant_id)
        pipe.execute()

    def read_tenant(self, tenant_id: str) -> TenantRecord | None:
        key = self._keys.tenant(tenant_id)
        name, created_at, policy = self._redis.hmget(key, "name", "created_at", "policy")
        if created_at is None:
            return None
        return TenantRecord((name or b"").decode(), created_at.decode(), policy or b"{}")

    def tenant_ids(self) -> list[str]:
        return sorted(i.decode() for i in self._redis.smembers(self._keys.tenants))

    def delete_tenant(self, tenant_id: str) -> list[str]:
        """Remove the tenant's record and every API key of it; the key ids removed."""
        key_ids = self.api_key_ids(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.unlink(self._keys.api_key(key_id))
        pipe.unlink(self._keys.tenant_api_keys(tenant_id))  # separate slots on a cluster
        pipe.unlink(self._keys.tenant(tenant_id))
        pipe.srem(self._keys.tenants, tenant_id)
        pipe.execute()
        return key_ids

    # --- API keys ----------------------------------------------------------------------

    def add_api_key(
        self, tenant_id: str, key_id: str, *, secret_hash: str, created_at: str, label: str | None
    ) -> None:
        record = {"tenant": tenant_id, "hash": secret_hash, "created_at": created_at}
        if label:
            record["label"] = label
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._keys.api_key(key_id), mapping=record)
        pipe.sadd(self._keys.tenant_api_keys(tenant_id), key_id)
        pipe.execute()

    def api_key_ids(self, tenant_id: str) -> list[str]:
        return sorted(k.decode() for k in self._redis.smembers(self._keys.tenant_api_keys(tenant_id)))

    def api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        key_ids = self.api_key_ids(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.hmget(self._keys.api_key(key_id), "created_at", "label", "last_used_at")
        records = []
        for key_id, (created, label, last_used) in zip(key_ids, pipe.execute(), strict=True):
            if created is None:
                continue
            records.append(
                ApiKeyRecord(
                    key_id=key_id,
                    created_at=created.decode(),
                    label=label.decode() if label else None,
                    last_used_at=last_used.decode() if last_used else None,
                )
            )
        return records

    def api_key_owner(self, key_id: str) -> str | None:
        owner = self._redis.hget(self._keys.api_key(key_id), "tenant")
        return owner.decode() if owner is not None else None

    def delete_api_key(self, tenant_id: str, key_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.unlink(self._keys.api_key(key_id))
        pipe.srem(self._keys.tenant_api_keys(tenant_id), key_id)
        pipe.execute()

    def stored_secret(self, key_id: str) -> StoredSecret | None:
        secret_hash, tenant_id = self._redis.hmget(self._keys.api_key(key_id), "hash", "tenant")
        if not secret_hash or not tenant_id:
            return None
        return StoredSecret(secret_hash.decode(), tenant_id.decode())

    def touch_api_key(self, key_id: str, used_at: str) -> None:
        self._touch.run(self._redis, [self._keys.api_key(key_id)], [used_at])
