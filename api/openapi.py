"""The OpenAPI document as the API really answers: an error's ``detail`` is
either FastAPI's list of validation errors or one sentence saying what to
fix (the routes' own 4xx answers), so the 422 schema says both."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

DETAIL = {"anyOf": [
    {"type": "string", "description": "what is wrong and what to do"},
    {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
], "title": "Detail"}


def install(app: FastAPI) -> None:
    def schema() -> dict:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            errors = document.get("components", {}).get("schemas", {}).get(
                "HTTPValidationError")
            if errors is not None:
                errors["properties"]["detail"] = DETAIL
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema
