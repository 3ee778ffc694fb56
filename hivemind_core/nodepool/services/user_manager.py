"""UserManager: the identities and tokens the node pool accepts besides the cluster token."""

from __future__ import annotations

import secrets

import grpc

from hivemind_core.nodepool.auth import Authenticator, caller_of
from hivemind_core.nodepool.services.errors import grpc_errors
from hivemind_core.nodepool.store import Store
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc


class UserManagerServicer(pb_grpc.UserManagerServicer):
    def __init__(self, store: Store, auth: Authenticator) -> None:
        self.store, self.auth = store, auth

    @grpc_errors
    def CreateToken(self, request: pb.CreateTokenRequest, context: grpc.ServicerContext) -> pb.CreateTokenReply:
        if not request.name.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a token needs a name")
        token = secrets.token_urlsafe(32)
        self.store.create_client_token(request.name.strip(), token, self.store.now())
        self.auth.refresh()
        return pb.CreateTokenReply(name=request.name.strip(), token=token)

    @grpc_errors
    def RevokeToken(self, request: pb.RevokeTokenRequest, context: grpc.ServicerContext) -> pb.RevokeTokenReply:
        revoked = self.store.revoke_client_token(request.name.strip())
        self.auth.refresh()
        return pb.RevokeTokenReply(revoked=revoked)

    @grpc_errors
    def ListTokens(self, request: pb.ListTokensRequest, context: grpc.ServicerContext) -> pb.ListTokensReply:
        return pb.ListTokensReply(tokens=[pb.TokenInfo(name=t["name"], created_at=t["created_at"])
                                          for t in self.store.client_tokens()])

    def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.ServicerContext) -> pb.WhoAmIReply:
        caller = caller_of(self.auth, context)
        return pb.WhoAmIReply(kind=caller.kind, name=caller.name)
