"""Opt-out and opt-in words in every shipped locale, end to end through the Twilio and
WhatsApp webhooks."""

import pytest

from cartrescue.clock import FrozenClock
from cartrescue.inbound import LOCALE_START_WORDS, LOCALE_STOP_WORDS, keyword
from cartrescue.store.sqlite import SQLiteStore
from cartrescue.unsubscribe_pages import TEXTS
from cartrescue.web import make_app
from tests.test_web import (
    APP_SECRET,
    NOW,
    PUBLIC,
    TWILIO_TOKEN,
    post_whatsapp,
    send_sms,
    whatsapp_text,
)

SHIPPED_LOCALES = set(TEXTS)  # the locales the package ships texts for

# What a buyer writes, as they would type it (case, accents, punctuation, Arabic marks).
STOP_AS_WRITTEN = {
    "en": ["STOP", "Unsubscribe", "stop all", "quit!"],
    "nb": ["Stopp", "meld av", "Avslutt."],
    "fi": ["Lopeta", "peru", "LOPETA!"],
    "hu": ["Leiratkozás", "leiratkozas", "Stopp", "Állj"],
    "ar": ["توقف", "إلغاء", "الغاء الاشتراك", "توقّف", "إيقاف"],
    "pt-BR": ["Parar", "SAIR", "cancelar.", "Descadastrar"],
}
START_AS_WRITTEN = {
    "en": ["START", "unstop", "Yes"],
    "nb": ["Start", "starte"],
    "fi": ["Aloita"],
    "hu": ["Indítás", "feliratkozás"],
    "ar": ["ابدأ", "اشتراك"],
    "pt-BR": ["Iniciar", "Recomeçar", "voltar"],
}


def test_every_shipped_locale_has_words():
    assert set(STOP_AS_WRITTEN) == set(SHIPPED_LOCALES)
    assert set(LOCALE_STOP_WORDS) | {"en"} == set(SHIPPED_LOCALES)
    assert set(LOCALE_START_WORDS) | {"en"} == set(SHIPPED_LOCALES)


@pytest.mark.parametrize("text", [w for words in STOP_AS_WRITTEN.values() for w in words])
def test_stop_words_as_written(text):
    assert keyword(text) == "stop"


@pytest.mark.parametrize("text", [w for words in START_AS_WRITTEN.values() for w in words])
def test_start_words_as_written(text):
    assert keyword(text) == "start"


@pytest.mark.parametrize(
    "text",
    ["sim", "ja", "igen", "نعم", "Onko tätä sinisenä?", "Pare de me mandar isso amanhã", "stopper"],
)
def test_answers_and_sentences_are_not_keywords(text):
    assert keyword(text) is None


@pytest.fixture
def app_and_store():
    with SQLiteStore(":memory:") as store:
        app = make_app(
            store,
            public_url=PUBLIC,
            twilio_auth_token=TWILIO_TOKEN,
            whatsapp_app_secret=APP_SECRET,
            clock=FrozenClock(NOW),
        )
        yield app, store


@pytest.mark.parametrize("locale", sorted(STOP_AS_WRITTEN))
def test_stop_by_sms_in_each_shipped_language_opts_out(app_and_store, locale):
    app, store = app_and_store
    for number, text in enumerate(STOP_AS_WRITTEN[locale]):
        sender = f"+47912345{number:02d}"
        assert send_sms(app, text, sender=sender)[0] == 200
        assert store.optouts_for([sender]) == {"sms"}, text
        send_sms(app, START_AS_WRITTEN[locale][0], sender=sender)
        assert store.optouts_for([sender]) == set(), START_AS_WRITTEN[locale][0]


@pytest.mark.parametrize("locale", sorted(STOP_AS_WRITTEN))
def test_stop_by_whatsapp_in_each_shipped_language_opts_out(app_and_store, locale):
    app, store = app_and_store
    text = STOP_AS_WRITTEN[locale][0]
    assert post_whatsapp(app, whatsapp_text(text, f"wamid.{locale}"))[0] == 200
    assert store.optouts_for(["+4791234567"]) == {"whatsapp"}
