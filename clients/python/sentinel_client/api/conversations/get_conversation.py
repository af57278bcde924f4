from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.conversation import Conversation
from ...models.error_body import ErrorBody
from ...types import UNSET, Unset
from typing import cast
from uuid import UUID



def _get_kwargs(
    source_id: UUID,
    conversation_id: str,
    *,
    limit: int | Unset = UNSET,
    before: int | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["before"] = before


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/conversations/{source_id}/{conversation_id}".format(source_id=quote(str(source_id), safe=""),conversation_id=quote(str(conversation_id), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Conversation | ErrorBody | None:
    if response.status_code == 200:
        response_200 = Conversation.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())



        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())



        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())



        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())



        return response_404

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())



        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())



        return response_413

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())



        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())



        return response_429

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())



        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Conversation | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    source_id: UUID,
    conversation_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = UNSET,
    before: int | Unset = UNSET,

) -> Response[Conversation | ErrorBody]:
    """ One conversation: where it stands, its messages and its turns with their jobs and
    replies. `limit` answered messages (default 50) before `before` (a history position, from
    `next_before`), with every unanswered one.

    Args:
        source_id (UUID):
        conversation_id (str):
        limit (int | Unset):
        before (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Conversation | ErrorBody]
     """


    kwargs = _get_kwargs(
        source_id=source_id,
conversation_id=conversation_id,
limit=limit,
before=before,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    source_id: UUID,
    conversation_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = UNSET,
    before: int | Unset = UNSET,

) -> Conversation | ErrorBody | None:
    """ One conversation: where it stands, its messages and its turns with their jobs and
    replies. `limit` answered messages (default 50) before `before` (a history position, from
    `next_before`), with every unanswered one.

    Args:
        source_id (UUID):
        conversation_id (str):
        limit (int | Unset):
        before (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Conversation | ErrorBody
     """


    return sync_detailed(
        source_id=source_id,
conversation_id=conversation_id,
client=client,
limit=limit,
before=before,

    ).parsed

async def asyncio_detailed(
    source_id: UUID,
    conversation_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = UNSET,
    before: int | Unset = UNSET,

) -> Response[Conversation | ErrorBody]:
    """ One conversation: where it stands, its messages and its turns with their jobs and
    replies. `limit` answered messages (default 50) before `before` (a history position, from
    `next_before`), with every unanswered one.

    Args:
        source_id (UUID):
        conversation_id (str):
        limit (int | Unset):
        before (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Conversation | ErrorBody]
     """


    kwargs = _get_kwargs(
        source_id=source_id,
conversation_id=conversation_id,
limit=limit,
before=before,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    source_id: UUID,
    conversation_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = UNSET,
    before: int | Unset = UNSET,

) -> Conversation | ErrorBody | None:
    """ One conversation: where it stands, its messages and its turns with their jobs and
    replies. `limit` answered messages (default 50) before `before` (a history position, from
    `next_before`), with every unanswered one.

    Args:
        source_id (UUID):
        conversation_id (str):
        limit (int | Unset):
        before (int | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Conversation | ErrorBody
     """


    return (await asyncio_detailed(
        source_id=source_id,
conversation_id=conversation_id,
client=client,
limit=limit,
before=before,

    )).parsed
