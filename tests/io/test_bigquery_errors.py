"""A refused BigQuery source says what failed: not found (which dataset or table), permission
denied (which permission, which service account) or invalid SQL. A stand-in client raises the
errors google-cloud-bigquery raises, with BigQuery's own messages; nothing is contacted."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from pipeline.io.warehouse import bigquery
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.runner import pipeline_options

SERVICE_ACCOUNT = "runner@my-project.iam.gserviceaccount.com"


class RefusingClient:
    project = "my-project"

    def __init__(self, error: Exception):
        self.error = error

    def query(self, *args, **kwargs):
        raise self.error

    def get_table(self, *args, **kwargs):
        raise self.error


def refusal(error: Exception, argv: list[str]) -> str:
    params, _ = parse_args(["--source=bigquery", *argv])
    with pytest.raises(ParameterError) as refused:
        bigquery.source_fields(params, RefusingClient(error), SERVICE_ACCOUNT)
    return refused.value.name, str(refused.value)


QUERY = "--query=SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM `my-project.sales.daily`"


def test_query_over_a_missing_dataset_names_it():
    name, text = refusal(exceptions.NotFound("Not found: Dataset my-project:sales was not found in location EU"),
                         [QUERY])
    assert name == "query" and "found no dataset my-project:sales" in text and "location" in text


def test_missing_input_table_names_it():
    name, text = refusal(exceptions.NotFound("Not found: Table my-project:sales.daily"),
                         ["--input_table=my-project:sales.daily"])
    assert name == "input_table" and "found no table my-project:sales.daily" in text


def test_permission_denied_names_the_permission_and_the_service_account():
    error = exceptions.Forbidden("Access Denied: Project my-project: User does not have bigquery.jobs.create "
                                 "permission in project my-project.")
    name, text = refusal(error, [QUERY])
    assert name == "query" and "permission denied (bigquery.jobs.create)" in text and SERVICE_ACCOUNT in text
    assert "BigQuery Job User" in text


def test_invalid_sql_says_so():
    name, text = refusal(exceptions.BadRequest("Syntax error: Unexpected keyword FROM at [1:8]"),
                         ["--query=SELECT FROM t"])
    assert name == "query" and "valid BigQuery standard SQL" in text and "Unexpected keyword FROM" in text


def test_the_launch_service_account_reaches_the_message(monkeypatch):
    error = exceptions.Forbidden("Access Denied: Table my-project:sales.daily: User does not have permission to "
                                 "query table my-project:sales.daily.")
    monkeypatch.setattr(bigquery, "make_client", lambda project: RefusingClient(error))
    params, beam_args = parse_args(["--source=bigquery", QUERY, f"--service_account_email={SERVICE_ACCOUNT}",
                                    "--project=my-project"])
    with pytest.raises(ParameterError) as refused:
        bigquery.prepare(params, pipeline_options(beam_args), "bigquery")
    assert SERVICE_ACCOUNT in str(refused.value) and "permission denied" in str(refused.value)
