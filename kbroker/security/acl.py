"""ACLs and the authorizer, with Kafka's model and Kafka's StandardAuthorizer rules.

An ACL binding is a resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal, host,
operation, ALLOW or DENY). To authorise (principal, host, operation) on (type, name):

1. a super user (``super.users``, principals separated by ';') may do anything;
2. the ACLs that match the resource are those of its type whose pattern is the literal name, the literal
   wildcard ``*``, or a prefix of the name; of these, the ones for the principal or ``User:*``, for the host
   or ``*``, and for the operation or ALL apply -- an ALLOW for READ, WRITE, DELETE or ALTER also allows
   DESCRIBE, and one for ALTER_CONFIGS also allows DESCRIBE_CONFIGS (DENY implies nothing);
3. any applying DENY denies; else any applying ALLOW allows;
4. with no ACL at all on the resource, ``allow.everyone.if.no.acl.found`` decides (default false); with ACLs
   on it that do not apply, the answer is deny.

``authorize_by_resource_type`` (may this principal WRITE *some* topic? -- asked by InitProducerId for an
idempotent producer) follows Kafka's Authorizer.authorizeByResourceType.

Bindings persist in a KeyedState state log (``.kbroker/acls.journal``), key = the binding as canonical JSON, so
CreateAcls and DeleteAcls survive a restart. Results are cached per (principal, host, operation, resource)
until the ACLs change. Used from the event loop only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import IntEnum

from ..state_log import KeyedState

log = logging.getLogger("kbroker.authorizer")


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class PermissionType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# The names handlers use: ctx.authorize(acl.WRITE, acl.TOPIC, name)
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE,
                                                 AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE)
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = (
    AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE)
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER,
                                          ResourceType.TRANSACTIONAL_ID)
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"

# AclEntry.supportedOperations: what authorised-operations bit sets are made of.
SUPPORTED_OPERATIONS = {
    ResourceType.TOPIC: (READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, ALTER_CONFIGS),
    ResourceType.GROUP: (READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS),
    ResourceType.CLUSTER: (CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (DESCRIBE, WRITE),
    ResourceType.DELEGATION_TOKEN: (DESCRIBE,),
    ResourceType.USER: (AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS),
}
_IMPLIES_DESCRIBE = frozenset({DESCRIBE, READ, WRITE, DELETE, ALTER})
_IMPLIES_DESCRIBE_CONFIGS = frozenset({DESCRIBE_CONFIGS, ALTER_CONFIGS})


def bit_set(operations) -> int:
    """Kafka's Utils.to32BitField: bit n set for operation code n."""
    out = 0
    for op in operations:
        out |= 1 << int(op)
    return out


def all_operations(resource_type: ResourceType) -> int:
    """The authorised-operations bits when no authorizer is configured: everything supported."""
    return bit_set(SUPPORTED_OPERATIONS[resource_type])


def valid_principal(principal: str | None) -> bool:
    """``Type:name``, as SecurityUtils.parseKafkaPrincipal requires."""
    if not principal:
        return False
    kind, sep, name = principal.partition(":")
    return bool(sep and kind and name)


@dataclass(frozen=True)
class AclBinding:
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def key(self) -> str:
        return json.dumps([self.resource_type, self.resource_name, self.pattern_type, self.principal, self.host,
                           self.operation, self.permission], separators=(",", ":"))

    @classmethod
    def from_key(cls, key: str) -> "AclBinding":
        return cls(*json.loads(key))

    def validate(self) -> str | None:
        """Why Kafka would refuse to create this binding (INVALID_REQUEST), or None."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY) or self.resource_type not in \
                ResourceType._value2member_map_:
            return f"Invalid resourceType {_name(ResourceType, self.resource_type)}"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"Invalid patternType {_name(PatternType, self.pattern_type)}"
        if self.operation in (AclOperation.UNKNOWN, AclOperation.ANY) or self.operation not in \
                AclOperation._value2member_map_:
            return f"Invalid operation {_name(AclOperation, self.operation)}"
        if self.permission not in (PermissionType.ALLOW, PermissionType.DENY):
            return f"Invalid permissionType {_name(PermissionType, self.permission)}"
        if self.resource_type == ResourceType.CLUSTER and self.resource_name != CLUSTER_NAME:
            return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        if not self.resource_name:
            return "Invalid empty resource name"
        if not valid_principal(self.principal):
            return f"Could not parse principal from `{self.principal}` (no colon is found)"
        if not self.host:
            return "Invalid empty host"
        return None


def _name(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class AclFilter:
    """DescribeAcls / DeleteAcls filters: None (or ANY) matches anything."""
    resource_type: int = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: int = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: int = AclOperation.ANY
    permission: int = PermissionType.ANY

    def validate(self) -> str | None:
        if self.resource_type == ResourceType.UNKNOWN or self.resource_type not in ResourceType._value2member_map_:
            return "Unknown patternFilter."
        if self.pattern_type == PatternType.UNKNOWN or self.pattern_type not in PatternType._value2member_map_:
            return "Unknown patternFilter."
        if self.operation == AclOperation.UNKNOWN or self.operation not in AclOperation._value2member_map_:
            return "Unknown entryFilter."
        if self.permission == PermissionType.UNKNOWN or self.permission not in PermissionType._value2member_map_:
            return "Unknown entryFilter."
        return None

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and b.resource_type != self.resource_type:
            return False
        if not self._pattern_matches(b):
            return False
        if self.principal is not None and b.principal != self.principal:
            return False
        if self.host is not None and b.host != self.host:
            return False
        if self.operation != AclOperation.ANY and b.operation != self.operation:
            return False
        return self.permission == PermissionType.ANY or b.permission == self.permission

    def _pattern_matches(self, b: AclBinding) -> bool:
        """ResourcePatternFilter.matches: MATCH asks which bindings would apply to the named resource."""
        pt, name = self.pattern_type, self.resource_name
        if pt not in (PatternType.ANY, PatternType.MATCH) and pt != b.pattern_type:
            return False
        if name is None:
            return True
        if pt == PatternType.ANY or pt == b.pattern_type:
            return name == b.resource_name
        if b.pattern_type == PatternType.LITERAL:
            return name == b.resource_name or b.resource_name == WILDCARD
        return b.pattern_type == PatternType.PREFIXED and name.startswith(b.resource_name)


class Authorizer:
    CACHE_MAX = 100_000

    def __init__(self, journal: KeyedState, super_users=(), allow_everyone_if_no_acl_found: bool = False):
        self.journal = journal
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self.bindings: set[AclBinding] = {AclBinding.from_key(k) for k in journal.state}
        self._by_type: dict[int, list[AclBinding]] = {}
        self._cache: dict[tuple, bool] = {}
        self._reindex()

    def close(self) -> None:
        self.journal.close()

    def _reindex(self) -> None:
        by_type: dict[int, list[AclBinding]] = {}
        for b in self.bindings:
            by_type.setdefault(b.resource_type, []).append(b)
        self._by_type = by_type
        self._cache.clear()

    # -- changes -------------------------------------------------------------------------------------

    def create(self, binding: AclBinding) -> None:
        if binding not in self.bindings:
            self.journal.put(binding.key(), True)
            self.bindings.add(binding)
            self._reindex()

    def delete(self, flt: AclFilter, already: set[AclBinding] | None = None) -> list[AclBinding]:
        """Deletes what matches the filter; returns it."""
        matched = [b for b in self.bindings if flt.matches(b) and (already is None or b not in already)]
        for b in matched:
            self.journal.put(b.key(), None)
            self.bindings.discard(b)
        if matched:
            self._reindex()
        return matched

    def describe(self, flt: AclFilter) -> list[AclBinding]:
        return sorted((b for b in self.bindings if flt.matches(b)),
                      key=lambda b: (b.resource_type, b.resource_name, b.pattern_type, b.principal, b.host,
                                     b.operation, b.permission))

    # -- decisions -----------------------------------------------------------------------------------

    def authorize(self, principal: str, host: str, operation: int, resource_type: int, name: str,
                  log_denied: bool = True) -> bool:
        key = (principal, host, operation, resource_type, name)
        allowed = self._cache.get(key)
        if allowed is None:
            allowed = self._decide(principal, host, operation, resource_type, name)
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[key] = allowed
        if not allowed and log_denied:
            log.info("Principal = %s is Denied operation = %s from host = %s on resource = %s:LITERAL:%s",
                     principal, _name(AclOperation, operation), host, _name(ResourceType, resource_type), name)
        return allowed

    def _decide(self, principal, host, operation, resource_type, name) -> bool:
        if principal in self.super_users:
            return True
        has_acls = allow = False
        for b in self._by_type.get(resource_type, ()):
            if b.pattern_type == PatternType.LITERAL:
                if b.resource_name != name and b.resource_name != WILDCARD:
                    continue
            elif b.pattern_type == PatternType.PREFIXED:
                if not name.startswith(b.resource_name):
                    continue
            else:
                continue
            has_acls = True
            result = _applies(b, principal, host, operation)
            if result is PermissionType.DENY:
                return False
            if result is PermissionType.ALLOW:
                allow = True
        if allow:
            return True
        return not has_acls and self.allow_everyone_if_no_acl_found

    def authorize_by_resource_type(self, principal: str, host: str, operation: int, resource_type: int) -> bool:
        if self.authorize(principal, host, operation, resource_type, "hardcode", log_denied=False):
            return True
        deny_literal, deny_prefixed, allow_literal, allow_prefixed = set(), set(), set(), set()
        for b in self._by_type.get(resource_type, ()):
            if b.host not in (host, WILDCARD) or b.principal not in (principal, WILDCARD_PRINCIPAL):
                continue
            if b.operation not in (operation, AclOperation.ALL):
                continue
            if b.permission == PermissionType.DENY:
                if b.pattern_type == PatternType.LITERAL:
                    if b.resource_name == WILDCARD:
                        return False
                    deny_literal.add(b.resource_name)
                elif b.pattern_type == PatternType.PREFIXED:
                    deny_prefixed.add(b.resource_name)
            elif b.permission == PermissionType.ALLOW:
                if b.pattern_type == PatternType.LITERAL:
                    if b.resource_name == WILDCARD:
                        return True
                    allow_literal.add(b.resource_name)
                elif b.pattern_type == PatternType.PREFIXED:
                    allow_prefixed.add(b.resource_name)
        for kind, names in ((PatternType.LITERAL, allow_literal), (PatternType.PREFIXED, allow_prefixed)):
            for name in names:
                if kind == PatternType.LITERAL and name in deny_literal:
                    continue
                if any(name[:i] in deny_prefixed for i in range(1, len(name) + 1)):
                    continue
                return True
        return False

    def authorized_operations(self, principal: str, host: str, resource_type: int, name: str) -> int:
        return bit_set(op for op in SUPPORTED_OPERATIONS[resource_type]
                       if self.authorize(principal, host, op, resource_type, name, log_denied=False))


def _applies(b: AclBinding, principal: str, host: str, operation: int):
    """StandardAuthorizerData.findResult: None, or the binding's permission when it applies."""
    if b.principal != principal and b.principal != WILDCARD_PRINCIPAL:
        return None
    if b.host != WILDCARD and b.host != host:
        return None
    if b.operation != AclOperation.ALL:
        if b.permission == PermissionType.ALLOW:
            if operation == DESCRIBE:
                if b.operation not in _IMPLIES_DESCRIBE:
                    return None
            elif operation == DESCRIBE_CONFIGS:
                if b.operation not in _IMPLIES_DESCRIBE_CONFIGS:
                    return None
            elif operation != b.operation:
                return None
        elif operation != b.operation:
            return None
    return PermissionType.ALLOW if b.permission == PermissionType.ALLOW else PermissionType.DENY


def parse_super_users(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(";") if p.strip()]
