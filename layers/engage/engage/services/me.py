"""GET /v1/me: the signed-in user's balances and level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.models import CurrencyOut, MeResponse
from ..store.progress import load_user
from .config import active_config
from .errors import Unauthorized
from .views import level_out


def my_progress(claims: Mapping[str, Any]) -> MeResponse:
    user_id = str(claims.get("sub") or "")
    if not user_id:
        raise Unauthorized("the token has no 'sub' claim")
    config = active_config().config
    state = load_user(user_id)
    currencies = {
        currency_id: CurrencyOut(
            name=currency.name,
            balance=state.balances.get(currency_id, 0),
            earned=state.earned.get(currency_id, 0),
        )
        for currency_id, currency in config.currencies.items()
    }
    level = None
    if config.levels is not None:
        level = level_out(config, state.earned.get(config.levels.currency, 0))
    return MeResponse(
        user_id=user_id,
        display_name=state.profile.display_name,
        timezone=state.profile.timezone or config.default_timezone,
        locale=state.profile.locale or config.default_locale,
        currencies=currencies,
        level=level,
    )
