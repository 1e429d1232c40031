"""Every Redis command on tenant records and API key records (``keyspace`` names them).

A tenant's record, its key set and each key record live in different cluster slots, so no
script or MULTI can hold them together. What keeps a key from outliving its tenant (and
getting in as whoever reuses the id) is the order of the writes instead:

* ``add_api_key_if_tenant_exists`` writes the key (record and set entry) first and checks
  the tenant's record afterwards, in its own round trip; the key is handed out only if the
  record was still there.
* ``delete_tenant`` removes the keys it finds, then the record, reading the key set again
  with the record's removal and removing what it finds there too.

So a key handed out was in the key set before the record went, and the deletion's second
read finds it; a key whose check found no record is removed by its writer (its secret was
never handed out, so nobody can use it for the moment it exists). The limits left are in
``delete_tenant``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from app.domain.keyspace import Keyspace
from app.domain.redis_access import Script, is_cluster, translates_outages


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
        self._cluster = is_cluster(redis)
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

    def tenant_exists(self, tenant_id: str) -> bool:
        """Whether the tenant has a record (the same test as ``read_tenant``'s)."""
        return bool(self._redis.hexists(self._keys.tenant(tenant_id), "created_at"))

    def tenant_ids(self) -> list[str]:
        return sorted(i.decode() for i in self._redis.smembers(self._keys.tenants))

    def delete_tenant(self, tenant_id: str) -> list[str]:
        """Remove the tenant's record and every API key of it; the key ids removed.

        The keys go first, so none of them meets a new tenant of the same id. A key added
        meanwhile (its writer found the record still there) is in the key set when the
        record goes: the set is read again with the record's removal (one transaction on a
        single node), and those keys go too. What is left, each needing the id re-created
        by another worker within one round trip of this deletion:

        * a key handed out in that race lives one round trip past the record, and would
          get in as the re-created tenant until it goes;
        * on a cluster, where the removal and the second read cannot share a transaction,
          a key the re-created tenant was given between them is removed too (it stops
          working: safe, and the operator issues another).
        """
        key_ids = self.api_key_ids(tenant_id)
        self._remove_api_keys(tenant_id, key_ids)
        pipe = self._redis.pipeline(transaction=not self._cluster)
        pipe.unlink(self._keys.tenant(tenant_id))
        pipe.srem(self._keys.tenants, tenant_id)
        pipe.smembers(self._keys.tenant_api_keys(tenant_id))
        late = sorted(k.decode() for k in pipe.execute()[-1])
        self._remove_api_keys(tenant_id, late)
        return sorted(key_ids + late)

    def _remove_api_keys(self, tenant_id: str, key_ids: list[str]) -> None:
        """Remove these keys' records and only these ids from the key set (an id added
        since the set was read stays listed, so a later read still finds it)."""
        if not key_ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:  # one key per UNLINK: separate slots on a cluster
            pipe.unlink(self._keys.api_key(key_id))
        pipe.srem(self._keys.tenant_api_keys(tenant_id), *key_ids)
        pipe.execute()

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

    def add_api_key_if_tenant_exists(
        self, tenant_id: str, key_id: str, *, secret_hash: str, created_at: str, label: str | None
    ) -> bool:
        """Add a key while its tenant's record exists; False, leaving nothing behind, when
        it does not. The check comes after the write, in a round trip of its own (commands
        of one cluster pipeline to different nodes have no order): see the module's
        docstring for why that order makes the race with ``delete_tenant`` safe."""
        self.add_api_key(tenant_id, key_id, secret_hash=secret_hash, created_at=created_at, label=label)
        if self.tenant_exists(tenant_id):
            return True
        self.delete_api_key(tenant_id, key_id)
        return False

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
