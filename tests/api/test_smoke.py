async def test_login_and_me(client, owner):
    answer = await client.get("/api/v1/auth/me", headers=owner.headers)
    assert answer.json()["role"] == "owner"
