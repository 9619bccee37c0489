"""Imports every models module so `Base.metadata` describes the whole schema."""

from conduit.admin import models as admin_models  # noqa: F401
from conduit.billing import models as billing_models  # noqa: F401
from conduit.email import models as email_models  # noqa: F401
from conduit.identity import models as identity_models  # noqa: F401
from conduit.kit import jobs, ratelimit  # noqa: F401
from conduit.kit.db import Base
from conduit.orgs import models as orgs_models  # noqa: F401
from conduit.scanning import models as scanning_models  # noqa: F401
from conduit.servers import models as servers_models  # noqa: F401
from conduit.webhooks import models as webhooks_models  # noqa: F401

metadata = Base.metadata
