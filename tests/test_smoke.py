from tests.conftest import Client


async def test_healthz_and_roster(client: Client, admin: dict[str, str]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"
    response = await client.get("/api/v1/endpoints", headers=admin)
    endpoints = (await response.json())["endpoints"]
    assert len(endpoints) == 31
