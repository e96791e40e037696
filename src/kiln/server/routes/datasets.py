"""REST: datasets."""

from fastapi import APIRouter

router = APIRouter()
