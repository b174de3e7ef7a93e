"""Pydantic models of the HTTP API's JSON bodies (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. not_an_image")
    message: str = Field(description="what was wrong and what is accepted")
    status: int = Field(description="the HTTP status code")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Prediction(BaseModel):
    label: int = Field(description="index of the most probable class")
    class_name: str
    probability: float = Field(description="probability of the predicted class")
    probabilities: list[float] = Field(description="softmax over all classes, in class order")


class PredictResponse(BaseModel):
    predictions: list[Prediction] | None = Field(
        None, description="one per input, for a classifier (absent when outputs are given)"
    )
    labels: list[int] | None = None
    class_names: list[str] | None = None
    outputs: dict[str, Any] | None = Field(
        None,
        description="a model whose outputs are not class logits: each output by name, as a "
        "nested list with the batch first",
    )
    runtime: str


class TensorRequest(BaseModel):
    inputs: list[Any] = Field(
        description="one sample shaped like the model input (e.g. [C, H, W]) or a batch "
        "[N, C, H, W]; values are the model's input (already normalized)"
    )


class ModelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    architecture: dict[str, Any] | str | None = Field(
        None, description="{name, model_args} of the registry model (.pqz); null for bare ONNX"
    )
    format: str | None = None
    runtime: str
    int8: bool = Field(description="whether the served graph runs on int8 (QDQ) kernels")
    num_classes: int
    class_names: list[str]
    input_shape: list[int] | None = Field(
        None, description="one sample's shape, for a model that takes one float tensor"
    )
    inputs: list[dict[str, Any]] | None = Field(
        None,
        description="a model with named inputs: [{name, dtype, shape, low?, high?}], shape "
        "with the batch axis first and names for dynamic axes; requests are checked against it",
    )
    outputs: list[dict[str, Any]] | None = Field(
        None, description="a model with named inputs: its outputs [{name, shape}]"
    )
    task: str | None = Field(
        None, description="'classification' (labels) or 'tensors' (outputs returned by name)"
    )
    file_bytes: int | None = None
    threads: dict[str, Any] | None = Field(
        None,
        description="thread sizes: intra-op threads per inference, inferences at once, and the "
        "CPU budget (affinity, cgroup quota) they were sized from",
    )


class Status(BaseModel):
    status: str
    detail: str | None = None
