"""The seed quickstart (bloop's README with bloop replaced by streamodel), run verbatim.

Point it at DynamoDB with AWS_ENDPOINT_URL_DYNAMODB (``make demo`` starts DynamoDB Local).
"""

import uuid

from streamodel import UUID, Column, Engine, GlobalSecondaryIndex, String, new_base

Base = new_base()


class Account(Base):
    class Meta:
        read_units = 5
        write_units = 2

    id = Column(UUID, hash_key=True)
    name = Column(String)
    email = Column(String)
    by_email = GlobalSecondaryIndex(hash_key="email")  # projection defaults to "all"


engine = Engine()
engine.bind(base=Base)

account = Account(id=uuid.uuid4(), name="username", email="foo@bar.com")
engine.save(account)
same_account = Account(id=account.id)
engine.load(same_account)
q = engine.query(Account.by_email).key(Account.email == "foo@bar.com")
also_same = q.first()

if_not_exist = Account.id.is_(None)
try:
    engine.save(account, condition=if_not_exist)  # raises ConditionFailedError: id exists
except Exception as error:
    print("as expected:", type(error).__name__, error)
same_username = Account.name == "username"
account.email = "new@email.com"
engine.save(account, condition=same_username)
engine.delete(account, atomic=True)  # fails if anything changed since last load/save
print("quickstart ok:", same_account, also_same)
