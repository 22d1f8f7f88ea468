"""Image and layer locations by region: facts that a test checks against the SageMaker SDK's own data."""

from __future__ import annotations

# The account that hosts sagemaker-clarify-processing:1.0 in each region.
CLARIFY_REGISTRIES = {
    "af-south-1": "811711786498", "ap-east-1": "098760798382", "ap-northeast-1": "377024640650",
    "ap-northeast-2": "263625296855", "ap-northeast-3": "912233562940", "ap-south-1": "452307495513",
    "ap-southeast-1": "834264404009", "ap-southeast-2": "007051062584", "ap-southeast-3": "705930551576",
    "ca-central-1": "675030665977", "cn-north-1": "122526803553", "cn-northwest-1": "122578899357",
    "eu-central-1": "017069133835", "eu-central-2": "730335477804", "eu-north-1": "763603941244",
    "eu-south-1": "638885417683", "eu-west-1": "131013547314", "eu-west-2": "440796970383",
    "eu-west-3": "341593696636", "me-south-1": "835444307964", "sa-east-1": "520018980103",
    "us-east-1": "205585389593", "us-east-2": "211330385671", "us-gov-west-1": "598674086554",
    "us-isof-east-1": "579539705040", "us-isof-south-1": "411392592546", "us-west-1": "740489534195",
    "us-west-2": "306415355426",
}  # fmt: skip


# The account that hosts the built-in BlazingText image (blazingtext:1) in each region.
BLAZINGTEXT_REGISTRIES = {
    "af-south-1": "455444449433", "ap-east-1": "286214385809", "ap-northeast-1": "501404015308",
    "ap-northeast-2": "306986355934", "ap-northeast-3": "867004704886", "ap-south-1": "991648021394",
    "ap-south-2": "628508329040", "ap-southeast-1": "475088953585", "ap-southeast-2": "544295431143",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "469771592824",
    "ca-west-1": "190319476487", "cn-north-1": "390948362332", "cn-northwest-1": "387376663083",
    "eu-central-1": "813361260812", "eu-central-2": "680994064768", "eu-north-1": "669576153137",
    "eu-south-1": "257386234256", "eu-south-2": "104374241257", "eu-west-1": "685385470294",
    "eu-west-2": "644912444149", "eu-west-3": "749696950732", "il-central-1": "898809789911",
    "me-central-1": "272398656194", "me-south-1": "249704162688", "sa-east-1": "855470959533",
    "us-east-1": "811284229777", "us-east-2": "825641698319", "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700", "us-iso-east-1": "490574956308", "us-isob-east-1": "765400339828",
    "us-isof-east-1": "108575199400", "us-isof-south-1": "124985052026", "us-west-1": "632365934929",
    "us-west-2": "433757028032",
}  # fmt: skip


def ecr_domain(region: str) -> str:
    for prefix, domain in (("cn-", "amazonaws.com.cn"), ("us-isof-", "csp.hci.ic.gov"), ("us-isob-", "sc2s.sgov.gov"),
                           ("us-iso-", "c2s.ic.gov")):  # fmt: skip
        if region.startswith(prefix):
            return domain
    return "amazonaws.com"


def blazingtext_image_uri(region: str) -> str:
    if region not in BLAZINGTEXT_REGISTRIES:
        raise ValueError(f"BlazingText is not available in {region}; regions: {sorted(BLAZINGTEXT_REGISTRIES)}")
    return f"{BLAZINGTEXT_REGISTRIES[region]}.dkr.ecr.{region}.{ecr_domain(region)}/blazingtext:1"


def clarify_image_uri(region: str) -> str:
    if region not in CLARIFY_REGISTRIES:
        raise ValueError(f"SageMaker Clarify is not available in {region}; regions: {sorted(CLARIFY_REGISTRIES)}")
    return f"{CLARIFY_REGISTRIES[region]}.dkr.ecr.{region}.{ecr_domain(region)}/sagemaker-clarify-processing:1.0"


def clarify_repository_arn(region: str) -> str:
    """The ECR repository of ``clarify_image_uri(region)``: a job role may pull from exactly this repository."""
    account = clarify_image_uri(region).split(".", 1)[0]
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    return f"arn:{partition}:ecr:{region}:{account}:repository/sagemaker-clarify-processing"
