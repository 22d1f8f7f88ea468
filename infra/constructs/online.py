"""Optional: an endpoint that explains each request online (SageMaker Clarify online explainability)."""

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
    ):
        super().__init__(scope, id)
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
            explainer_config=sagemaker.CfnEndpointConfig.ExplainerConfigProperty(clarify_explainer_config=explainer),
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
