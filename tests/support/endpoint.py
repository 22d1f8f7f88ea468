"""A SageMaker model's containers served on 127.0.0.1, called as SageMaker calls them (for the job stand-ins).

Written from the SageMaker Developer Guide: a model container answers ``POST /invocations`` ("Use your own inference
code with hosting services"); a serial inference pipeline ("Inference pipelines in Amazon SageMaker AI") sends the
request to its first container and each container's answer, with that answer's Content-Type, to the next; the last
container's answer is the endpoint's. The Accept header of the caller goes to every container (assumption: the guide
does not say; our containers answer their own types whatever Accept intermediate ones get).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests


class InvocationError(Exception):
    """A container answered with an error status: what SageMaker reports as the model's error."""

    def __init__(self, url: str, status: int, body: bytes):
        super().__init__(f"{url}/invocations answered {status}: {body[:300]!r}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class Endpoint:
    """The base URLs of a model's containers, in the model's order (one for a single-container model)."""

    urls: tuple[str, ...]

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """(answer body, answer Content-Type) of the model for one request."""
        for url in self.urls:
            answer = requests.post(
                url + "/invocations", data=body, headers={"Content-Type": content_type, "Accept": accept}, timeout=60
            )
            if answer.status_code != 200:
                raise InvocationError(url, answer.status_code, answer.content)
            body, content_type = answer.content, answer.headers.get("Content-Type", "")
        return body, content_type
