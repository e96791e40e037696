"""REST: sql."""

from fastapi import APIRouter

router = APIRouter()
