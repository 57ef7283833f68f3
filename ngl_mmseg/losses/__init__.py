from .ngl_loss import NGLLoss, ngl_loss

__all__ = ['NGLLoss', 'ngl_loss']
