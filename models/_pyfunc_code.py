"""MLflow "models from code" entry point for govrisk bundles; MLflow executes this file.

Never import it from project code: it registers the model object with `mlflow.models.set_model`
when executed, which is the contract of models-from-code (the one module with an effect at
import). The behaviour lives in `models.pyfunc`; this file only wires it up.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc.model import PythonModel, PythonModelContext


class GovriskBundleModel(PythonModel):
    """pyfunc wrapper: `predict(df)` returns raw_score and calibrated probability per row."""

    def load_context(self, context: PythonModelContext) -> None:
        from models.pyfunc import ARTIFACT_KEY, load_bundle

        self.bundle = load_bundle(context.artifacts[ARTIFACT_KEY])
        self.bundle.warm_up(explain=False)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        from models.pyfunc import predict_frame

        del context  # the bundle was read in load_context

        explain = int((params or {}).get("explain", 0))
        return predict_frame(self.bundle, model_input, explain=explain)


mlflow.models.set_model(GovriskBundleModel())
