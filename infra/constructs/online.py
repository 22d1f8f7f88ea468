"""Optional: an endpoint that explains each request online.

Engine "clarify": SageMaker Clarify online explainability (an endpoint config with a ClarifyExplainerConfig over the
stage's model). Engine "builtin": no Clarify at all; a second model of our own image in SERVE_MODE=explain
(fasttext_server.explain_mode), the same artifact, environment and execution role as the stage's model, answers each
request with the prediction and its attributions in Clarify's online shape; its endpoint config has no explainer.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from explain_workflow.contract import ClarifyOptions
from explain_workflow.languages import language_code


class OnlineExplainer(Construct):
    """Endpoint config with a Clarify explainer config (text, granularity, language, baseline, samples) + endpoint."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        clarify: ClarifyOptions,
        labels: list[str],
        instance_type: str,
        model: sagemaker.CfnModel,
        key: kms.IKey,
        engine: str = "clarify",
        hosting=None,  # ModelHosting: image, artifact, environment and role of the stage's model (builtin only)
    ):
        super().__init__(scope, id)
        if engine == "builtin":
            self._builtin(clarify, instance_type, hosting, key)
            return
        explainer = sagemaker.CfnEndpointConfig.ClarifyExplainerConfigProperty(
            enable_explanations="`true`",  # JMESPath over the request; every request is explained
            inference_config=sagemaker.CfnEndpointConfig.ClarifyInferenceConfigProperty(
                feature_types=["text"],
                label_headers=labels,
                probability_attribute="prob",
                label_attribute="label",
            ),
            shap_config=sagemaker.CfnEndpointConfig.ClarifyShapConfigProperty(
                shap_baseline_config=sagemaker.CfnEndpointConfig.ClarifyShapBaselineConfigProperty(
                    shap_baseline=clarify.baseline
                ),
                number_of_samples=min(clarify.num_samples, 100),  # online: bounded per-request latency
                use_logit=False,
                text_config=sagemaker.CfnEndpointConfig.ClarifyTextConfigProperty(
                    granularity=clarify.granularity, language=language_code(clarify.language)
                ),
            ),
        )
        self._endpoint(
            model,
            instance_type,
            key,
            explainer_config=sagemaker.CfnEndpointConfig.ExplainerConfigProperty(clarify_explainer_config=explainer),
        )

    def _builtin(self, clarify: ClarifyOptions, instance_type: str, hosting, key: kms.IKey) -> None:
        environment = {
            **hosting.environment,
            "SERVE_MODE": "explain",
            # the same bound as the Clarify explainer's number_of_samples above: per-request latency
            "EXPLAIN_NUM_SAMPLES": str(min(clarify.num_samples, 100)),
            "EXPLAIN_GRANULARITY": clarify.granularity,
            "EXPLAIN_LANGUAGE": clarify.language,
            "EXPLAIN_BASELINE": clarify.baseline,
            "EXPLAIN_SEED": str(clarify.seed or 0),
        }
        self.model = sagemaker.CfnModel(
            self,
            "ExplainModel",
            execution_role_arn=hosting.role.role_arn,  # the stage model's role: the same image and artifact, no more
            enable_network_isolation=True,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=hosting.image_uri, model_data_url=hosting.artifact_s3_uri, environment=environment
            ),
        )
        self.model.node.add_dependency(hosting.role.node.find_child("DefaultPolicy"))
        self._endpoint(self.model, instance_type, key)

    def _endpoint(
        self,
        model: sagemaker.CfnModel,
        instance_type: str,
        key: kms.IKey,
        explainer_config: sagemaker.CfnEndpointConfig.ExplainerConfigProperty | None = None,
    ) -> None:
        """The endpoint config (one instance of ``model`` takes all traffic; volumes encrypted with ``key``; Clarify's
        explainer config, or none) and the endpoint."""
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name="AllTraffic",
                    model_name=model.attr_model_name,
                    initial_instance_count=1,
                    instance_type=instance_type,
                )
            ],
            explainer_config=explainer_config,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
