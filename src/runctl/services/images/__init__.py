"""Container images: the build context, builds, ECR repositories and pushes (``runctl docker``,
``aws train --docker``)."""
