"""marshmallow is imported without compiling its e-mail domain pattern up front (about 20 ms of
a cold start), and e-mail validation works as before."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import marshmallow
import pytest

from streamodel import Column, String, ValidationError, new_base


def test_the_domain_pattern_is_compiled_on_first_use_only() -> None:
    """In a fresh process, importing streamodel leaves Email.DOMAIN_REGEX uncompiled; the
    first validation compiles it and puts a real pattern in its place."""
    script = textwrap.dedent(
        """
        import re
        import streamodel.types
        from marshmallow.validate import Email
        print(type(vars(Email)["DOMAIN_REGEX"]).__name__)
        Email()("someone@example.com")
        print(isinstance(vars(Email)["DOMAIN_REGEX"], re.Pattern))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["_DeferredPattern", "True"]


def test_email_columns_still_validate() -> None:
    """A marshmallow Email field as a column accepts addresses and refuses the rest."""
    Base = new_base()

    class Person(Base):
        id = Column(String, hash_key=True)
        email = Column(marshmallow.fields.Email())

    assert Person.Schema().load({"id": "a", "email": "a@b.example"}).email == "a@b.example"
    with pytest.raises(ValidationError) as refused:
        Person.Schema().load({"id": "a", "email": "a@-b-.example"})
    assert "email" in refused.value.messages
    assert isinstance(marshmallow.validate.Email.DOMAIN_REGEX, re.Pattern)
