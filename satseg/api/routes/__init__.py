"""One ``APIRouter`` per area of the REST API; ``satseg.api.app.create_app`` mounts them."""
