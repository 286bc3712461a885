"""Request models of the tasks (pydantic). Images travel beside them as bytes; `tasks.py` pairs them up."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inference_server.errors import ApiError
from inference_server.families import ASPECT_RATIOS

AspectRatio = Literal["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"]
assert set(ASPECT_RATIOS) == set(AspectRatio.__args__)
MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**32 - 1


class _NoBooleansForNumbers(BaseModel):
    """`true` is not 1: pydantic's lax mode would count it so; strings from multipart still parse."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool(cls, value, info):
        annotation = cls.model_fields[info.field_name].annotation
        kinds = {annotation, *get_args(annotation)}
        if isinstance(value, bool) and kinds & {int, float}:
            raise ValueError("must be a number, not true or false")
        return value


class TaskRequest(_NoBooleansForNumbers):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    num_inference_steps: int | None = Field(None, ge=1, le=150)
    guidance: float | None = Field(None, ge=0, le=20, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    num_images: int = Field(1, ge=1, le=4)
    output_format: Literal["png", "webp", "jpeg"] = "png"

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class PromptRequired(TaskRequest):
    prompt: str = Field(max_length=MAX_PROMPT_CHARS)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a prompt is required")
        return value


def _invalid(field: str, message: str) -> ApiError:
    """Cross-field rules name the field to fix; ApiError passes through pydantic unwrapped."""
    return ApiError(422, "invalid_value", f"{field}: {message}", field)


def _pair(width: int | None, height: int | None) -> None:
    if (width is None) != (height is None):
        raise _invalid("height" if height is None else "width", "give both width and height, or neither")


class GenerateRequest(PromptRequired):
    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(None, ge=16, le=4096)
    aspect_ratio: AspectRatio | None = None

    @model_validator(mode="after")
    def _size(self) -> "GenerateRequest":
        _pair(self.width, self.height)
        if self.width is not None and self.aspect_ratio is not None:
            raise _invalid("aspect_ratio", "give either width/height or aspect_ratio, not both")
        return self


class Img2ImgRequest(PromptRequired):
    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(None, ge=16, le=4096)
    strength: float = Field(0.6, ge=0.01, le=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _size(self) -> "Img2ImgRequest":
        _pair(self.width, self.height)
        return self


class EditRequest(PromptRequired):
    """An instruction (`prompt`) applied to image 1, with up to two reference images; optionally inside a mask."""

    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(None, ge=16, le=4096)
    mask_invert: bool = False
    mask_blur: int = Field(8, ge=0, le=64)
    mask_grow: int = Field(8, ge=0, le=128)

    @model_validator(mode="after")
    def _size(self) -> "EditRequest":
        _pair(self.width, self.height)
        return self


class Region(_NoBooleansForNumbers):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value):
        """`"x,y,width,height"` too: tools whose parameters are flat strings (Dify's custom tools) send it so."""
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split(",")]
        if len(parts) != 4 or not all(part.lstrip("-").isdigit() for part in parts):
            raise ValueError('give {"x", "y", "width", "height"} or the text "x,y,width,height" in pixels')
        return dict(zip(("x", "y", "width", "height"), map(int, parts)))


class InpaintRequest(TaskRequest):
    region: Region | None = None
    mask_invert: bool = False
    mask_blur: int = Field(8, ge=0, le=64)
    mask_grow: int = Field(8, ge=0, le=128)
    strength: float = Field(1.0, ge=0.01, le=1.0, allow_inf_nan=False)
    inpaint_area: Literal["full", "masked"] = "full"
    masked_padding: int = Field(32, ge=0, le=512)


class OutpaintRequest(TaskRequest):
    left: int = Field(0, ge=0, le=4096)
    right: int = Field(0, ge=0, le=4096)
    top: int = Field(0, ge=0, le=4096)
    bottom: int = Field(0, ge=0, le=4096)
    aspect_ratio: AspectRatio | None = None
    feather: int = Field(24, ge=0, le=128)

    @model_validator(mode="after")
    def _extents(self) -> "OutpaintRequest":
        extents = (self.left, self.right, self.top, self.bottom)
        if self.aspect_ratio is not None and any(extents):
            raise _invalid("aspect_ratio", "give either left/right/top/bottom or aspect_ratio, not both")
        if self.aspect_ratio is None and not any(extents):
            raise _invalid("left", "nothing to extend: set left, right, top or bottom above 0, or an aspect_ratio")
        return self


def validate_request(model: type[TaskRequest], fields: dict) -> TaskRequest:
    """The task's request model, or a 422 naming the exact (dotted) field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(first["type"], "invalid_value")
        raise ApiError(422, code, f"{location}: {message}" if location else message, location) from None
